"""Helpers the recipes share: sheet discovery and folder matching."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from . import sheets
from .frames import list_frames
from .records import Candidate, Problem, Scan


def find_sheet(root: Path, patterns: tuple[str, ...], dataset: str) -> Path:
    """The dataset's annotation sheet under ``root`` (or its parent), by the owners' names.

    When several versions match, the last in name order (the newest dated one) is taken.
    """
    for base in (root, root.parent):
        for pattern in patterns:
            hits = sorted(p for p in base.glob(pattern) if not p.name.startswith("~$"))
            if hits:
                return hits[-1]
        for pattern in patterns:
            hits = sorted(p for p in base.glob(f"*/{pattern}") if not p.name.startswith("~$"))
            if hits:
                return hits[-1]
    raise FileNotFoundError(
        f"no {dataset} annotation sheet matching {', '.join(patterns)} under {root}; "
        "name it with --sheet")


def unmatched_folders(found: dict[str, Path], used: set[str], root: Path,
                      subject_of) -> list[Problem]:
    """Problems for clip folders on disk that no sheet row points at."""
    return [
        Problem("-", subject_of(key), "folder_without_row", "ignored",
                f"{found[key].relative_to(root).as_posix()} has no row in the sheet")
        for key in sorted(set(found) - used)
    ]


def invalid_subject(row: dict[str, object], filename: str, expected: str) -> Problem:
    """The problem that excludes one sheet row whose subject cell is blank (a merged cell
    reads blank) or malformed, naming the sheet row; the rest of the sheet is read."""
    return Problem(f"row{row['_row']}", "-", "subject_invalid", "excluded",
                   f"sheet row {row['_row']}: subject {sheets.text(row.get('subject'))!r} is "
                   f"not {expected} (filename {filename!r})")


def disambiguate(clips: list[Candidate]) -> list[Candidate]:
    """Append the onset to clip ids that several rows share (one video, several events)."""
    counts = Counter(c.clip_id for c in clips)
    for c in clips:
        if counts[c.clip_id] > 1 and c.onset is not None:
            c.clip_id = f"{c.clip_id}_{c.onset}"
    return clips


def parse_window(row: dict[str, object]) -> tuple[dict[str, int | None], dict[str, str]]:
    """Onset, apex and offset of a sheet row, with a note for each cell that was odd."""
    values: dict[str, int | None] = {}
    notes: dict[str, str] = {}
    for key in ("onset", "apex", "offset"):
        values[key], note = sheets.parse_frame(row.get(key))
        if note and not (key == "apex" and note == "empty"):
            notes[key] = note
    return values, notes


def clip_frames(scan: Scan, folder: Path, clip_id: str, subject: str) -> dict[int, str]:
    """A clip folder's frames by number; files without a usable number are reported."""
    frames, odd = list_frames(folder)
    if odd:
        scan.problems.append(Problem(clip_id, subject, "frame_name_unparsed", "ignored",
                                     f"files without a usable frame number: {odd[:5]}"))
    return frames
