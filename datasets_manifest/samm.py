"""SAMM: Spontaneous Actions and Micro-Movements.

Davison, Lansley, Costen, Tan, Yap. "SAMM: A Spontaneous Micro-Facial Movement Dataset."
IEEE Transactions on Affective Computing 9(1): 116-129, 2018.
Licence: academic use under the owners' release agreement; not redistributable.

Layout (``root`` is the folder holding the subject folders, or its parent)::

    SAMM/006/006_1_2/006_05562.jpg      {subject:03d}/{clip}/{subject}_{frame:05d}.jpg
    SAMM_Micro_FACS_Codes_v2.xlsx       13 preamble rows (a symbol key) before the header

Grey 2040x1088 frames at 200 fps. Sheet columns (found by name): Subject, Filename,
Inducement Code, Onset Frame, Apex Frame, Offset Frame, Duration, Micro, Action Units,
Estimated Emotion, Objective Classes, Notes. In the key, '/' means "or" and '?' marks an
unsure offset. Known faults: apex outside onset..offset (028_4_1, 032_3_1).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sheets
from ._common import clip_frames, find_sheet, invalid_subject, parse_window, unmatched_folders
from .records import Candidate, LabelMap, Problem, Scan, safe_id

NAME = "samm"
FPS = 200.0
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes_v*.xlsx", "SAMM_Micro_FACS_Codes*.xlsx",
                  "SAMM_Micro_FACS_Codes*.csv")

LABELS = LabelMap(
    known=frozenset({"anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise",
                     "other"}),
    three={"anger": "negative", "contempt": "negative", "disgust": "negative",
           "fear": "negative", "sadness": "negative", "happiness": "positive",
           "surprise": "surprise"},
    # The published 5-class lists (FDP's and MOL's SAMM_data_5 folders) keep every clip:
    # "other" gathers other 26, disgust 9, fear 8 and sadness 6 (159 clips; 49 other).
    five={**{e: e for e in ("anger", "happiness", "contempt", "surprise", "other")},
          **{e: "other" for e in ("disgust", "fear", "sadness")}},
)

COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset Frame", "Onset"),
    "apex": ("Apex Frame", "Apex"),
    "offset": ("Offset Frame", "Offset"),
    "aus": ("Action Units",),
    "emotion": ("Estimated Emotion", "Emotion"),
}
REQUIRED = ("subject", "filename", "onset", "apex", "offset", "emotion")


def prepare(root: Path, sheet: Path | None = None) -> Scan:
    """Read a SAMM folder and its FACS-codes sheet into candidate clips."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "SAMM")
    images = _image_root(root)
    scan = Scan(NAME, images, FPS, LABELS, sheet=sheet)
    folders = {
        e.name: e
        for s in sorted(images.iterdir()) if s.is_dir() and re.fullmatch(r"\d+", s.name)
        for e in sorted(s.iterdir()) if e.is_dir()
    }
    used: set[str] = set()
    for row in sheets.read_table(sheet, COLUMNS, REQUIRED):
        subject = _subject(row["subject"])
        filename = sheets.text(row["filename"])
        if subject is None:
            scan.problems.append(invalid_subject(row, filename, "a subject number"))
            continue
        clip_id = safe_id(filename)
        folder = folders.get(filename)
        if folder is None or folder.parent.name != subject:
            detail = f"sheet row {row['_row']}: no folder {subject}/{filename}"
            scan.problems.append(Problem(clip_id, subject, "row_without_folder", "excluded",
                                         detail))
            continue
        used.add(filename)
        frames = clip_frames(scan, folder, clip_id, subject)
        values, notes = parse_window(row)
        scan.clips.append(Candidate(
            subject=subject, clip_id=clip_id, source=folder.relative_to(images).as_posix(),
            kind="images", frames=frames, emotion=sheets.text(row["emotion"]).lower(),
            action_units=sheets.text(row.get("aus")), sheet_row=int(row["_row"]), notes=notes,
            **values,
        ))
    scan.problems += unmatched_folders(folders, used, images, lambda k: k.split("_")[0])
    return scan


def _subject(value: object) -> str | None:
    """6, 6.0, '6' and '006' name folder '006'; None for a blank cell or one that is not a
    whole number."""
    number = re.fullmatch(r"\s*(\d+)(?:\.0*)?\s*", sheets.text(value))
    return f"{int(number.group(1)):03d}" if number else None


def _image_root(root: Path) -> Path:
    for candidate in (root, root / "SAMM"):
        if candidate.is_dir() and any(
                p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(f"{root}: no subject folders (006, 007, ...) here or in SAMM/")
