"""A lab's own recordings: a folder of video files, with an optional annotation CSV.

Layout (``root``)::

    root/anyname.mp4                 mp4, avi, mov, mpg, mkv, m4v (any depth)
    root/annotations.csv             optional: video, subject, onset, apex, offset, emotion

Frame numbers are 0-based decoded frame indices. Without a CSV every video is one clip
spanning all its frames, with no apex and no label; its subject is the first folder under
``root`` (or the file's stem at top level). The CSV's ``video`` column (``clip`` is also
accepted) is a path relative to ``root``, with or without its suffix; a video that several
rows name gives clips whose ids carry the onset. Emotions map to the 3-class protocol
(negative, positive, surprise, or the fine labels of CASME II and SAMM) and to the CASME II
5-class names where they match.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from . import sheets
from ._common import disambiguate, parse_window
from .frames import VIDEO_SUFFIXES
from .records import Candidate, LabelMap, Problem, Scan, safe_id

NAME = "videos"
SHEET_PATTERNS = ("annotations.csv",)
_NEGATIVE = ("negative", "anger", "contempt", "disgust", "fear", "repression", "sadness", "sad")
LABELS = LabelMap(
    known=frozenset((*_NEGATIVE, "positive", "happiness", "happy", "surprise", "others", "other")),
    three={**{e: "negative" for e in _NEGATIVE}, "positive": "positive",
           "happiness": "positive", "happy": "positive", "surprise": "surprise"},
    five={e: e for e in ("disgust", "happiness", "others", "repression", "surprise")},
)
COLUMNS = {
    "video": ("video", "clip", "file"),
    "subject": ("subject",),
    "onset": ("onset",),
    "apex": ("apex",),
    "offset": ("offset",),
    "emotion": ("emotion",),
}


def prepare(root: Path, sheet: Path | None = None) -> Scan:
    """Read a folder of videos (and the CSV, when given or found) into candidate clips."""
    root = Path(root)
    if sheet is None and (root / "annotations.csv").is_file():
        sheet = root / "annotations.csv"
    videos = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
              if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}
    if not videos:
        raise FileNotFoundError(f"{root}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    fps = _fps(next(iter(videos.values())))
    scan = Scan(NAME, root, fps, LABELS, sheet=sheet)
    counts: dict[str, int] = {}

    def frames_of(name: str) -> dict[int, str]:
        if name not in counts:
            counts[name] = count_frames(videos[name])
        return {i: str(i) for i in range(counts[name])}

    if sheet is None:
        for name in videos:
            parts = Path(name).parts
            subject = parts[0] if len(parts) > 1 else Path(name).stem
            frames = frames_of(name)
            scan.clips.append(Candidate(
                subject=subject, clip_id=safe_id(Path(name).with_suffix("").as_posix()),
                source=name, kind="video", frames=frames, onset=0 if frames else None,
                apex=None, offset=len(frames) - 1 if frames else None, emotion=""))
        return scan

    by_stem = {Path(n).with_suffix("").as_posix(): n for n in videos}
    clips = []
    for row in sheets.read_table(sheet, COLUMNS, ("video", "onset", "offset")):
        given = sheets.text(row["video"])
        name = given if given in videos else by_stem.get(Path(given).with_suffix("").as_posix()
                                                         if Path(given).suffix else given)
        clip_id = safe_id(Path(given).with_suffix("").as_posix())
        subject = sheets.text(row.get("subject")) or Path(given).stem
        if name is None:
            detail = f"sheet row {row['_row']}: no video {given!r} under {root}"
            scan.problems.append(Problem(clip_id, subject, "row_without_video", "excluded",
                                         detail))
            continue
        values, notes = parse_window(row)
        clips.append(Candidate(
            subject=subject, clip_id=clip_id, source=name, kind="video", frames=frames_of(name),
            emotion=sheets.text(row.get("emotion")).lower(), sheet_row=int(row["_row"]),
            notes=notes, **values))
    scan.clips = disambiguate(clips)
    return scan


def count_frames(path: Path) -> int:
    """Frames a video really decodes to (container counts lie for mpg and some mov)."""
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def _fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
