"""Long videos for spotting: what the ``*_lv`` recipes read, its validation and its files.

A long-video recipe (``casme2_lv``, ``samm_lv``, ``casme3_lv``) reads a dataset's long-video
folders and its spotting sheet into a :class:`LongScan`: every video folder with its frames,
every sheet row as an :class:`Event`, and the problems met while reading. Validation keeps
every video and every event it can use, and reports the rest, one problem per finding:

- ``onset_after_offset``, ``onset_invalid``/``offset_invalid`` and ``type_unknown``: the event
  is excluded;
- ``interval_outside_video``: the event names frames beyond the video's first..last frame on
  disk, excluded (clamping would change the truth the spotter is scored on);
- ``overlapping``: two events of one video share frames, kept (the datasets annotate
  overlapping micro- and macro-expressions, and MEGC scores both);
- ``missing_frames``: numbers missing inside a video's first..last range, kept, or the video
  excluded with its events when more than ``max_missing_fraction`` of it is missing;
  ``interval_missing_frames`` names events whose own frames are missing;
- ``row_without_video``, and ``video_without_interval`` (a video left with no usable event is
  kept: every spot there is a false positive).

Files (``mesti spot-manifest``): ``videos.csv`` (one row per usable video), ``intervals.csv``
(one row per usable event, ``type`` micro or macro), ``problems.csv``, ``report.md`` and
``counts.json``. Frame numbers are those of the file names, as in the sheets.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .records import Problem

VIDEOS = "videos.csv"
INTERVALS = "intervals.csv"
PROBLEMS = "problems.csv"
REPORT = "report.md"
COUNTS = "counts.json"
TYPES = ("micro", "macro")


@dataclass
class LongVideo:
    """One long video as found on disk: its folder (relative to the scan root) and frames."""

    subject: str
    video: str
    source: str
    frames: dict[int, str]


@dataclass
class Event:
    """One sheet row: an annotated interval of one video (``type`` already micro/macro, or
    the sheet's text when it is neither)."""

    video: str
    subject: str
    onset: int | None
    apex: int | None
    offset: int | None
    type: str
    emotion: str = ""
    action_units: str = ""
    sheet_row: int | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class LongScan:
    """Everything a long-video recipe read from one dataset root."""

    dataset: str
    root: Path
    fps: float
    sheet: Path | None
    videos: dict[str, LongVideo] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class VideoRow:
    dataset: str
    subject: str
    video: str
    root: str
    source: str
    first_frame: int
    last_frame: int
    n_frames: int
    missing_frames: int
    fps: float


@dataclass
class IntervalRow:
    dataset: str
    subject: str
    video: str
    onset: int
    apex: int | None
    offset: int
    type: str
    emotion: str
    action_units: str
    sheet_row: int | None


def validate_long(scan: LongScan, max_missing_fraction: float = 0.1
                  ) -> tuple[list[VideoRow], list[IntervalRow], list[Problem]]:
    """The usable videos and intervals of a scan, and every problem found (see module doc)."""
    problems = list(scan.problems)
    videos: dict[str, VideoRow] = {}
    for name, v in sorted(scan.videos.items()):
        if not v.frames:
            problems.append(Problem(name, v.subject, "no_frames", "excluded",
                                    f"{v.source} holds no frames"))
            continue
        first, last = min(v.frames), max(v.frames)
        missing = (last - first + 1) - len(v.frames)
        fraction = missing / (last - first + 1)
        if missing:
            gaps = [n for n in range(first, last + 1) if n not in v.frames]
            action = "excluded" if fraction > max_missing_fraction else "kept"
            problems.append(Problem(name, v.subject, "missing_frames", action,
                                    f"{missing} of frames {first}..{last} missing "
                                    f"({fraction:.1%}), first {gaps[:5]}"))
            if action == "excluded":
                continue
        videos[name] = VideoRow(scan.dataset, v.subject, name, scan.root.as_posix(), v.source,
                                first, last, len(v.frames), missing, scan.fps)
    kept: list[IntervalRow] = []
    with_rows: set[str] = set()
    for e in scan.events:
        where = f"sheet row {e.sheet_row}: " if e.sheet_row else ""

        def report(code: str, action: str, detail: str, e: Event = e, where: str = where) -> None:
            problems.append(Problem(e.video, e.subject, code, action, where + detail))

        if e.video not in scan.videos:
            report("row_without_video", "excluded", f"no folder for video {e.video}")
            continue
        if e.video not in videos:
            continue  # the video itself was excluded above
        if e.type not in TYPES:
            report("type_unknown", "excluded", f"type {e.type!r} is neither micro nor macro")
            continue
        if e.onset is None or e.offset is None:
            key = "onset" if e.onset is None else "offset"
            report(f"{key}_invalid", "excluded", f"{key} {e.notes.get(key, 'missing')}")
            continue
        for key, note in e.notes.items():
            report(f"{key}_note", "fixed" if key == "offset" else "kept", f"{key} {note}")
        if e.onset > e.offset:
            report("onset_after_offset", "excluded", f"onset {e.onset} is after offset {e.offset}")
            continue
        video, frames = videos[e.video], scan.videos[e.video].frames
        if e.onset < video.first_frame or e.offset > video.last_frame:
            report("interval_outside_video", "excluded",
                   f"interval {e.onset}..{e.offset} is outside the video's frames "
                   f"{video.first_frame}..{video.last_frame}")
            continue
        absent = sum(n not in frames for n in range(e.onset, e.offset + 1))
        if absent:
            report("interval_missing_frames", "kept",
                   f"{absent} of the interval's {e.offset - e.onset + 1} frames are missing")
        with_rows.add(e.video)
        kept.append(IntervalRow(scan.dataset, e.subject, e.video, e.onset, e.apex, e.offset,
                                e.type, e.emotion, e.action_units, e.sheet_row))
    kept.sort(key=lambda r: (r.video, r.onset, r.offset))
    reach: dict[str, IntervalRow] = {}  # per video, the interval reaching furthest so far
    for b in kept:
        a = reach.get(b.video)
        if a is not None and b.onset <= a.offset:
            problems.append(Problem(b.video, b.subject, "overlapping", "kept",
                                    f"{b.type} {b.onset}..{b.offset} overlaps {a.type} "
                                    f"{a.onset}..{a.offset}"))
        if a is None or b.offset > a.offset:
            reach[b.video] = b
    for name in sorted(set(videos) - with_rows):
        problems.append(Problem(name, videos[name].subject, "video_without_interval", "kept",
                                "no usable event; every spot there is a false positive"))
    return list(videos.values()), kept, problems


def write_long_manifest(scan: LongScan, out: Path, max_missing_fraction: float = 0.1,
                        absolute_paths: bool = False) -> dict[str, object]:
    """Validate ``scan`` and write its five files into ``out``; return the counts."""
    videos, intervals, problems = validate_long(scan, max_missing_fraction)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = scan.root.absolute()
    root_text = root.as_posix() if absolute_paths else \
        Path(os.path.relpath(root, out.absolute())).as_posix()
    for row in videos:
        row.root = root_text
    _write(out / VIDEOS, VideoRow, [asdict(v) for v in videos])
    _write(out / INTERVALS, IntervalRow, [asdict(i) for i in intervals])
    _write(out / PROBLEMS, Problem, [asdict(p) for p in problems])
    counts = {
        "videos_found": len(scan.videos) + sum(p.code == "row_without_video" for p in problems),
        "videos_ok": len(videos),
        "intervals_found": len(scan.events),
        "intervals_ok": len(intervals),
        "micro": sum(i.type == "micro" for i in intervals),
        "macro": sum(i.type == "macro" for i in intervals),
        "frames": sum(v.n_frames for v in videos),
        "problems": dict(sorted(Counter(p.code for p in problems).items())),
    }
    (out / COUNTS).write_text(json.dumps(counts, indent=2) + "\n")
    lines = [f"# Long-video manifest report: {scan.dataset}", "",
             f"- frames root: `{scan.root}`", f"- sheet: `{scan.sheet}`",
             f"- videos usable: {counts['videos_ok']} of {counts['videos_found']}, "
             f"{counts['frames']} frames at {scan.fps:g} fps",
             f"- intervals usable: {counts['intervals_ok']} of {counts['intervals_found']} "
             f"({counts['micro']} micro, {counts['macro']} macro)", "",
             "| video | subject | code | action | detail |", "|---|---|---|---|---|"]
    lines += [f"| {p.clip_id} | {p.subject} | {p.code} | {p.action} | {p.detail} |"
              for p in problems]
    (out / REPORT).write_text("\n".join(lines) + "\n")
    return counts


def _write(path: Path, cls: type, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(cls)])
        writer.writeheader()
        writer.writerows(rows)
