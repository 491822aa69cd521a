"""CAS(ME)^3 part A: the labelled micro-expression part of the third CASME database.

Li, Dong, Lu, Wang, Zhao, Xu, Fu. "CAS(ME)^3: A Third Generation Facial Spontaneous
Micro-Expression Database with Depth Information and High Ecological Validity."
IEEE TPAMI 45(3): 2782-2800, 2023.
Licence: academic use under the owners' release agreement; not redistributable.

Layout (``root`` holds the subject folders, at most two levels down)::

    spNO.1/a/color/12.jpg                              frames numbered by the sheet's index
    cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx

30 fps. Sheet columns (found by name): Subject, Filename, Onset, Apex, Offset, AU,
Objective class, emotion. One recording (Filename) holds several events, so the same
filename repeats within a subject: clip ids carry the onset where that happens. Dropped
frames happen (reported by validation as missing frames).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sheets
from ._common import (
    clip_frames,
    disambiguate,
    find_sheet,
    invalid_subject,
    parse_window,
    unmatched_folders,
)
from .records import Candidate, LabelMap, Problem, Scan, safe_id

NAME = "casme3"
FPS = 30.0
SHEET_PATTERNS = ("cas(me)3_part_A_ME_label_JpgIndex_v*.xlsx", "cas(me)3_part_A_ME_label*.xlsx",
                  "cas(me)3_part_A_ME_label*.csv")

# The owners' seven emotions; the 3-class grouping follows the CAS(ME)^3 paper.
LABELS = LabelMap(
    known=frozenset({"anger", "disgust", "fear", "happy", "sad", "surprise", "others"}),
    three={"anger": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
           "happy": "positive", "surprise": "surprise"},
    five={},
)

COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "OnsetFrame"),
    "apex": ("Apex", "ApexFrame"),
    "offset": ("Offset", "OffsetFrame"),
    "aus": ("AU", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
}
REQUIRED = ("subject", "filename", "onset", "apex", "offset", "emotion")


def prepare(root: Path, sheet: Path | None = None) -> Scan:
    """Read a CAS(ME)^3 part A folder and its label sheet into candidate clips."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "CAS(ME)^3")
    images = _image_root(root)
    scan = Scan(NAME, images, FPS, LABELS, sheet=sheet)
    folders = {
        f"{s.name}/{r.name}": r / "color"
        for s in sorted(images.glob("spNO.*")) if s.is_dir()
        for r in sorted(s.iterdir()) if (r / "color").is_dir()
    }
    used: set[str] = set()
    clips: list[Candidate] = []
    listed: dict[str, dict[int, str]] = {}
    for row in sheets.read_table(sheet, COLUMNS, REQUIRED):
        subject = _subject(row["subject"])
        filename = sheets.text(row["filename"])
        if subject is None:
            scan.problems.append(invalid_subject(row, filename, "a subject number"))
            continue
        key = f"{subject}/{filename}"
        clip_id = safe_id(subject, filename)
        if key not in folders:
            scan.problems.append(Problem(clip_id, subject, "row_without_folder", "excluded",
                                         f"sheet row {row['_row']}: no folder {key}/color"))
            continue
        used.add(key)
        if key not in listed:
            listed[key] = clip_frames(scan, folders[key], clip_id, subject)
        values, notes = parse_window(row)
        clips.append(Candidate(
            subject=subject, clip_id=clip_id, source=folders[key].relative_to(images).as_posix(),
            kind="images", frames=listed[key], emotion=sheets.text(row["emotion"]).lower(),
            action_units=sheets.text(row.get("aus")), sheet_row=int(row["_row"]), notes=notes,
            **values,
        ))
    scan.clips = disambiguate(clips)
    scan.problems += unmatched_folders(folders, used, images, lambda k: k.split("/")[0])
    return scan


def _image_root(root: Path) -> Path:
    for depth in ("", "*/", "*/*/"):
        hits = sorted(root.glob(f"{depth}spNO.*"))
        if hits:
            return hits[0].parent
    raise FileNotFoundError(f"{root}: no spNO.* subject folders within two levels")


def _subject(value: object) -> str | None:
    """'spNO.1', 'spNO.01', 'spNO1', 1, 1.0 and '1' all name folder 'spNO.1'; None for a
    blank cell or one that is not a whole subject number ('spNO.1.5', 'x2y')."""
    number = re.fullmatch(r"(?:spNO\.?)?\s*(\d+)(?:\.0*)?", sheets.text(value), re.IGNORECASE)
    return f"spNO.{int(number.group(1))}" if number else None
