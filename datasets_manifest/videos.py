"""A lab's own recordings: a folder of video files, with an optional annotation CSV.

Layout (``root``)::

    root/anyname.mp4                 mp4, avi, mov, mpg, mkv, m4v (any depth)
    root/annotations.csv             optional: video, subject, onset, apex, offset, emotion

Frame numbers are 0-based decoded frame indices, and each video's frame rate is its own.
An .avi that decodes to fewer frames than its index declares (truncated: the decoder may
repeat an earlier frame as the last) is excluded as
``video_truncated``; a file that decodes to nothing is ``no_frames``; a moving-image file of
another format (an animated .gif, .webm, ...) is not read and is named in the report
(``not_a_video``, with how to convert it). Without a CSV every
video is one clip spanning all its frames, with no apex and no label; its subject is the
first folder under ``root`` (or the file's stem at top level). The CSV's ``video`` column
(``clip`` is also accepted) is a path relative to ``root``, with or without its suffix; a
video that several rows name gives clips whose ids carry the onset. Emotions map to the
3-class protocol (negative, positive, surprise, or the fine labels of CASME II and SAMM)
and to the CASME II 5-class names where they match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2

from . import sheets
from ._common import disambiguate, invalid_subject, parse_window
from .frames import EXACT_COUNT, VIDEO_SUFFIXES
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
# Moving-image formats a lab may drop in the folder that this recipe does not read (an
# animated GIF has no dependable frame rate): each is named in the report, not skipped
# silently.
NOT_READ = frozenset({".gif", ".webm", ".wmv", ".flv", ".3gp", ".ogv", ".ts", ".mts",
                      ".m2ts", ".vob", ".apng"})
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
    others = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
              if p.suffix.lower() in NOT_READ and p.is_file()]
    if not videos:
        unread = f"; {len(others)} file(s) not read: {_not_read(others[0])}" if others else ""
        raise FileNotFoundError(f"{root}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})"
                                f"{unread}")
    scan = Scan(NAME, root, 0.0, LABELS, sheet=sheet)
    for name in others:  # named in the report, never skipped without a word
        scan.problems.append(Problem(safe_id(Path(name).with_suffix("").as_posix()), "-",
                                     "not_a_video", "ignored", _not_read(name)))
    probes: dict[str, VideoProbe] = {}

    def probe_of(name: str) -> VideoProbe:
        if name not in probes:
            probes[name] = probe(videos[name])
        return probes[name]

    def usable(name: str, clip_id: str, subject: str, row: str = "") -> VideoProbe | None:
        found = probe_of(name)
        if found.problem:
            scan.problems.append(Problem(clip_id, subject, found.problem[0], "excluded",
                                         f"{row}{name}: {found.problem[1]}"))
            return None
        return found

    if sheet is None:
        for name in videos:
            parts = Path(name).parts
            subject = parts[0] if len(parts) > 1 else Path(name).stem
            clip_id = safe_id(Path(name).with_suffix("").as_posix())
            found = usable(name, clip_id, subject)
            if found is None:
                continue
            frames = found.frames
            scan.clips.append(Candidate(
                subject=subject, clip_id=clip_id, source=name, kind="video", frames=frames,
                onset=0 if frames else None, apex=None,
                offset=len(frames) - 1 if frames else None, emotion="", fps=found.fps))
        return scan

    by_stem = {Path(n).with_suffix("").as_posix(): n for n in videos}
    clips = []
    for row in sheets.read_table(sheet, COLUMNS, ("video", "onset", "offset")):
        given = sheets.text(row["video"])
        name = given if given in videos else by_stem.get(Path(given).with_suffix("").as_posix()
                                                         if Path(given).suffix else given)
        clip_id = safe_id(Path(given).with_suffix("").as_posix())
        subject = sheets.text(row.get("subject")) or Path(given).stem
        if not _plausible_subject(subject):
            scan.problems.append(invalid_subject(row, given, "a subject name (one line of "
                                                 "text without a path separator)"))
            continue
        if name is None:
            detail = f"sheet row {row['_row']}: no video {given!r} under {root}"
            scan.problems.append(Problem(clip_id, subject, "row_without_video", "excluded",
                                         detail))
            continue
        found = usable(name, clip_id, subject, f"sheet row {row['_row']}: ")
        if found is None:
            continue
        values, notes = parse_window(row)
        clips.append(Candidate(
            subject=subject, clip_id=clip_id, source=name, kind="video", frames=found.frames,
            emotion=sheets.text(row.get("emotion")).lower(), sheet_row=int(row["_row"]),
            notes=notes, fps=found.fps, **values))
    scan.clips = disambiguate(clips)
    return scan



def _plausible_subject(subject: str) -> bool:
    """A subject cell the folds, reports and stores can carry: free text, but one line
    without a path separator or control character, and not '.' or '..'."""
    return subject not in (".", "..") and not re.search(r"[\x00-\x1f\x7f/\\]", subject)


def _not_read(name: str) -> str:
    return (f"{name}: {Path(name).suffix.lower()} is not read (videos are "
            f"{', '.join(sorted(VIDEO_SUFFIXES))}); convert it to one, e.g. ffmpeg -i "
            f"{Path(name).name} {Path(name).with_suffix('.mp4').name}, to include it")


@dataclass(frozen=True)
class VideoProbe:
    """What decoding a whole video found: its frames by index, its rate, what is wrong."""

    frames: dict[int, str]
    fps: float
    problem: tuple[str, str] | None = None


def probe(path: Path) -> VideoProbe:
    """Decode ``path`` once: frame count (container counts lie for mpg and some mov), fps,
    and the problem that excludes it (no frames, truncated, no frame rate)."""
    capture = cv2.VideoCapture(str(path))
    try:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = 0
        while capture.grab():
            count += 1
    finally:
        capture.release()
    frames = {i: str(i) for i in range(count)}
    if not count:
        return VideoProbe({}, fps, ("no_frames", "no frame decodes (not a video, or empty)"))
    if path.suffix.lower() in EXACT_COUNT and count < declared:
        return VideoProbe(frames, fps, ("video_truncated",
                                        f"{count} of the {declared} frames its container "
                                        "declares decode; the file is truncated"))
    if not fps > 0:
        return VideoProbe(frames, fps, ("fps_unknown", "the container gives no frame rate"))
    return VideoProbe(frames, fps)

