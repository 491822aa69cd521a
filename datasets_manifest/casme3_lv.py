"""CAS(ME)^3 part A long videos: the spotting use of CAS(ME)^3's part A recordings.

Li, Dong, Lu, Wang, Zhao, Xu, Fu. "CAS(ME)^3: A Third Generation Facial Spontaneous
Micro-Expression Database with Depth Information and High Ecological Validity."
IEEE TPAMI 45(3): 2782-2800, 2023. Licence: academic use under the owners' release
agreement; not redistributable.

30 fps colour (and depth, unused here). Layout (``root`` holds ``part_A``, ``data/part_A``,
or the subject folders)::

    part_A/spNO.1/a/color/8.jpg          {subject}/{recording}/color/{frame}.jpg, unpadded
    CAS(ME)3_part_A_v1.xls               (or an .xlsx / .csv export of it)

Sheet columns (found by name): Subject (``spNO.1``), Filename (the recording, ``a``),
Onset, Apex, Offset, and the expression type (``Macro-expression`` or
``Micro-expression``; headed Type, Expression type or Macro/Micro). A video is
``{subject}_{recording}``. Old ``.xls`` files need xlrd; the error says so, and an .xlsx or
.csv export reads without it. Sources: public CAS(ME)^3 spotting loaders that read
``annotation/CAS(ME)3_part_A_v1.xls`` (subject, recording, onset, apex, offset, and the
type in column 7) and ``data/part_A/<subject>/<recording>/color``.
"""

from __future__ import annotations

from pathlib import Path

from . import sheets
from ._common import find_sheet, parse_window
from .frames import list_frames
from .long_videos import Event, LongScan, LongVideo
from .records import Problem

NAME = "casme3_lv"
FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)3_part_A_v*.xlsx", "CAS(ME)3_part_A_v*.csv", "CAS(ME)3_part_A_v*.xls",
                  "annotation/CAS(ME)3_part_A_v*.xls*")
COLUMNS = {"subject": ("Subject",), "filename": ("Filename",), "onset": ("Onset",),
           "apex": ("Apex",), "offset": ("Offset",),
           "type": ("Type", "Expression type", "Macro/Micro", "Micro/Macro", "Expression"),
           "aus": ("AU", "Action Units"), "emotion": ("emotion", "Objective class")}
REQUIRED = ("subject", "filename", "onset", "offset", "type")


def prepare(root: Path, sheet: Path | None = None) -> LongScan:
    """Read CAS(ME)^3 part A's recordings and its part A sheet."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "CAS(ME)^3 part A")
    frames_root = next((p for p in (root / "part_A", root / "data" / "part_A") if p.is_dir()),
                       root)
    scan = LongScan(NAME, frames_root, FPS, sheet)
    for colour in sorted(frames_root.glob("*/*/color")):
        subject, recording = colour.parent.parent.name, colour.parent.name
        video = f"{subject}_{recording}"
        frames, odd = list_frames(colour)
        if odd:
            scan.problems.append(Problem(video, subject, "frame_name_unparsed", "ignored",
                                         f"files without a usable number: {odd[:5]}"))
        scan.videos[video] = LongVideo(subject, video, colour.relative_to(frames_root).as_posix(),
                                       frames)
    if not scan.videos:
        raise FileNotFoundError(f"{root}: no part_A/<subject>/<recording>/color folders")
    for row in sheets.read_table(sheet, COLUMNS, REQUIRED):
        subject = sheets.text(row["subject"])
        video = f"{subject}_{sheets.text(row['filename']).lower()}"
        values, notes = parse_window(row)
        kind = sheets.text(row["type"]).lower()
        kind = "micro" if kind.startswith("micro") else "macro" if kind.startswith("macro") \
            else kind
        scan.events.append(Event(video, subject, values["onset"], values["apex"],
                                 values["offset"], kind, sheets.text(row.get("emotion")).lower(),
                                 sheets.text(row.get("aus")), int(row["_row"]), notes))
    return scan
