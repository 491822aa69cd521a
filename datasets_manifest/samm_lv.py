"""SAMM long videos: the spotting release of SAMM (micro- and macro-movements).

Yap, Kendrick, Davison, Lansley. "SAMM Long Videos: A Spontaneous Facial Micro- and
Macro-Expressions Dataset." IEEE FG 2020 (and Davison et al., IEEE TAC 9(1), 2018, for
SAMM). Licence: academic use under the owners' release agreement; not redistributable.

147 long videos of 32 subjects at 200 fps, 2040x1088 grey; 159 micro, 343 macro.
Layout (``root`` holds ``SAMM_longvideos``, or is it)::

    SAMM_longvideos/006_1/006_1_0001.jpg        {subject}_{video}/{subject}_{video}_{frame:04d}
    SAMM_LongVideos_V3_Release.xlsx             a preamble (about ten rows) before the header

Sheet columns (found by name, after the preamble): Subject, Filename (``006_1_2``: the
second event of video ``006_1``), Inducement Code, Onset, Apex, Offset, Duration, Type
(``Micro - 1/2`` or ``Macro``), Action Units, Notes. Frame numbers in the sheet are those of
the file names. Sources: the MEGC spotting baselines' loaders (SOFTNet's and MTSN's
``load_excel``, which read these columns after ten preamble rows and split the video code
off ``Filename``; MDMD's README for the folder tree).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sheets
from ._common import find_sheet, parse_window
from .frames import list_frames
from .long_videos import Event, LongScan, LongVideo
from .records import Problem

NAME = "samm_lv"
FPS = 200.0
SHEET_PATTERNS = ("SAMM_LongVideos_V*_Release.xlsx", "SAMM_LongVideos*.xlsx",
                  "SAMM_LongVideos*.csv")
COLUMNS = {"subject": ("Subject",), "filename": ("Filename",), "onset": ("Onset",),
           "apex": ("Apex",), "offset": ("Offset",), "type": ("Type",),
           "aus": ("Action Units",)}
REQUIRED = ("filename", "onset", "offset", "type")


def prepare(root: Path, sheet: Path | None = None) -> LongScan:
    """Read the SAMM long videos and their release sheet."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "SAMM long videos")
    frames_root = root / "SAMM_longvideos" if (root / "SAMM_longvideos").is_dir() else root
    scan = LongScan(NAME, frames_root, FPS, sheet)
    for folder in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        if not re.fullmatch(r"\d+_\d+", folder.name):
            continue
        frames, odd = list_frames(folder)
        if odd:
            scan.problems.append(Problem(folder.name, folder.name.split("_")[0],
                                         "frame_name_unparsed", "ignored",
                                         f"files without a usable number: {odd[:5]}"))
        scan.videos[folder.name] = LongVideo(folder.name.split("_")[0], folder.name,
                                             folder.name, frames)
    if not scan.videos:
        raise FileNotFoundError(f"{root}: no SAMM_longvideos/NNN_N folders")
    for row in sheets.read_table(sheet, COLUMNS, REQUIRED):
        name = sheets.text(row["filename"])
        parts = name.split("_")
        video = "_".join(parts[:2]) if len(parts) >= 2 else name
        values, notes = parse_window(row)
        kind = sheets.text(row["type"]).lower()
        kind = "micro" if kind.startswith("micro") else "macro" if kind.startswith("macro") \
            else kind
        scan.events.append(Event(video, parts[0], values["onset"], values["apex"],
                                 values["offset"], kind, "", sheets.text(row.get("aus")),
                                 int(row["_row"]), notes))
    return scan
