"""CASME II: Chinese Academy of Sciences Micro-Expression database II.

Yan, Li, Wang, Zhao, Liu, Chen, Fu. "CASME II: An Improved Spontaneous Micro-Expression
Database and the Baseline Evaluation." PLoS ONE 9(1): e86041, 2014.
Licence: academic use under the owners' release agreement; not redistributable.

Layout (either tree may be given as ``root``, or the folder that holds it)::

    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg      raw 640x480, 200 fps
    Cropped/sub01/EP02_01f/reg_img46.jpg              the owners' aligned crops
    CASME2-coding-20140508.xlsx                       the coding sheet (or a later version)

Frame numbers are absolute: a folder starts at its onset number, not at 1. Sheet columns
(found by name): Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion. Known faults handled here and in validation: apex '/' (sub04 EP12_01f),
apex equal to onset or offset, '?' in the AUs, sheet filenames that differ from the
folder names (EP01_2, EP06_02_01, EP09f), annotated frames missing on disk.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sheets
from ._common import clip_frames, find_sheet, invalid_subject, parse_window, unmatched_folders
from .records import Candidate, LabelMap, Problem, Scan, safe_id

NAME = "casme2"
FPS = 200.0
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2-coding-*.xls", "CASME2-coding-*.csv")
LAYOUTS = ("CASME2_RAW_selected", "CASME2-RAW", "CASME2_RAW", "Cropped")

LABELS = LabelMap(
    known=frozenset({"happiness", "disgust", "repression", "surprise", "sadness", "fear",
                     "others"}),
    three={"disgust": "negative", "repression": "negative", "happiness": "positive",
           "surprise": "surprise"},
    five={e: e for e in ("disgust", "happiness", "others", "repression", "surprise")},
)

COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("OnsetFrame", "Onset"),
    "apex": ("ApexFrame", "Apex"),
    "offset": ("OffsetFrame", "Offset"),
    "aus": ("Action Units", "ActionUnits", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
REQUIRED = ("subject", "filename", "onset", "apex", "offset", "emotion")


def prepare(root: Path, sheet: Path | None = None) -> Scan:
    """Read a CASME II folder and its coding sheet into candidate clips."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "CASME II")
    images = _image_root(root)
    scan = Scan(NAME, images, FPS, LABELS, sheet=sheet)
    folders = {
        f"{s.name}/{e.name}": e
        for s in sorted(images.glob("sub*")) if s.is_dir()
        for e in sorted(s.iterdir()) if e.is_dir()
    }
    used: set[str] = set()
    for row in sheets.read_table(sheet, COLUMNS, REQUIRED):
        subject = _subject(row["subject"])
        filename = sheets.text(row["filename"])
        if subject is None:  # blank (a merged cell reads blank) or not a number
            scan.problems.append(invalid_subject(row, filename, "a subject number"))
            continue
        clip_id = safe_id(subject, filename)
        key, note = _match_folder(subject, filename, folders)
        if key is None:
            detail = f"sheet row {row['_row']}: no folder {subject}/{filename}"
            scan.problems.append(Problem(clip_id, subject, "row_without_folder", "excluded",
                                         detail))
            continue
        if note:
            scan.problems.append(Problem(clip_id, subject, "filename_mismatch", "fixed", note))
        used.add(key)
        scan.clips.append(_candidate(scan, row, subject, clip_id, folders[key]))
    scan.problems += unmatched_folders(folders, used, images, lambda k: k.split("/")[0])
    return scan


def _candidate(scan: Scan, row: dict, subject: str, clip_id: str, folder: Path) -> Candidate:
    frames = clip_frames(scan, folder, clip_id, subject)
    values, notes = parse_window(row)
    aus = sheets.text(row.get("aus"))
    return Candidate(
        subject=subject, clip_id=clip_id, source=folder.relative_to(scan.root).as_posix(),
        kind="images", frames=frames, onset=values["onset"], apex=values["apex"],
        offset=values["offset"], emotion=sheets.text(row["emotion"]).lower(),
        action_units=aus, sheet_row=int(row["_row"]), notes=notes,
    )


def _image_root(root: Path) -> Path:
    """The folder holding sub01, sub02, ...: ``root`` itself or one of the known trees."""
    if any(root.glob("sub[0-9]*")):
        return root
    for name in LAYOUTS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: no subNN folders and none of {', '.join(LAYOUTS)}")


def _subject(value: object) -> str | None:
    """'1', 1, 2.0, '2.0', 'sub1' and 'sub01' name folders sub01, sub02, sub01, sub01;
    None for a blank cell or one that is not a whole number."""
    number = re.fullmatch(r"(?:sub)?\s*(\d+)(?:\.0*)?", sheets.text(value), re.IGNORECASE)
    return f"sub{int(number.group(1)):02d}" if number else None


def _match_folder(subject: str, filename: str,
                  folders: dict[str, Path]) -> tuple[str | None, str | None]:
    """The folder key for a sheet row; a note when only a loose match was found.

    Exact name first; then one unique folder whose name equals the row's up to case and a
    trailing 'f' (the sheets write EP09 for EP09f and the reverse).
    """
    exact = f"{subject}/{filename}"
    if exact in folders:
        return exact, None
    loose = _loose(filename)
    hits = [k for k in folders if k.startswith(f"{subject}/") and _loose(k.split("/")[1]) == loose]
    if len(hits) == 1:
        return hits[0], f"sheet filename '{filename}' matched folder '{hits[0]}'"
    return None, None


def _loose(name: str) -> str:
    return name.lower().removesuffix("f")
