"""CAS(ME)^2 long videos: the spotting part of CAS(ME)^2 (micro- and macro-expressions).

Qu, Wang, Yan, Li, Zhao, Fu. "CAS(ME)^2: A Database for Spontaneous Macro-Expression and
Micro-Expression Spotting and Recognition." IEEE Transactions on Affective Computing 9(4):
424-436, 2018. Licence: academic use under the owners' release agreement; not
redistributable.

22 subjects, 98 long videos at 30 fps, 640x480; 57 micro- and 300 macro-expressions.
Layout (``root`` holds ``rawpic``, or is it)::

    rawpic/s15/15_0101disgustingteeth/img1.jpg     frames numbered from 1, as in the sheet
    CAS(ME)^2code_final.xlsx                        (or CAS(ME)^2code_final(Updated).xlsx)

The workbook has three sheets, read by position since the first has no header row:

- sheet 1 (``CASFEcode_final``): participant number, ``<name>_<n>`` (e.g. ``disgust1_1``,
  the n-th expression of the video ``disgust1``), onset, apex, offset, AUs, estimated
  emotion, ``micro-expression`` or ``macro-expression``, self-reported emotion;
- ``naming rule1``: folder number (15), folder name (s15), participant number (1);
- ``naming rule2``: the video code in the folder name (0101) and the video's name
  (disgust1).

A video is ``<folder number>_<code>`` (``15_0101``); its folder is the one in ``s15`` whose
name starts with that. An offset of 0 means the annotator left it open: it becomes
``apex + (apex - onset)``, the MEGC 2019 baseline's rule, reported as fixed.

Sources for the layout and the sheets: the MEGC spotting baselines' public code (the MEGC
2019 local-temporal-pattern baseline's ``get_GT_intervals_for_video``, which reads the two
naming-rule sheets and sheet 1's columns 0-4 and 7, and SOFTNet's and MDMD's READMEs,
which show the ``rawpic`` tree and the workbook beside it).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import sheets
from ._common import find_sheet
from .frames import list_frames
from .long_videos import Event, LongScan, LongVideo
from .records import Problem

NAME = "casme2_lv"
FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)^2code_final*.xlsx", "CAS(ME)^2code*.xlsx")
TYPES = {"micro-expression": "micro", "macro-expression": "macro"}


def prepare(root: Path, sheet: Path | None = None) -> LongScan:
    """Read CAS(ME)^2's long-video frames and its coding workbook."""
    root = Path(root)
    sheet = sheet or find_sheet(root, SHEET_PATTERNS, "CAS(ME)^2")
    frames_root = root / "rawpic" if (root / "rawpic").is_dir() else root
    if not any(p.is_dir() for p in frames_root.glob("s[0-9]*")):
        raise FileNotFoundError(f"{root}: no rawpic/sNN folders")
    scan = LongScan(NAME, frames_root, FPS, sheet)
    book = read_workbook(sheet)
    codes = next(iter(book.values()))
    rule1, rule2 = _sheet(book, "naming rule1", 1), _sheet(book, "naming rule2", 2)
    folder_of = {_number(r[2]): _number(r[0]) for r in rule1 if len(r) > 2
                 and _number(r[2]) is not None and _number(r[0]) is not None}
    code_of = {sheets.text(r[1]).lower(): sheets.text(r[0]).zfill(4) for r in rule2
               if len(r) > 1 and sheets.text(r[0])}
    folders = {}
    for subject in sorted(p for p in frames_root.glob("s[0-9]*") if p.is_dir()):
        for folder in sorted(p for p in subject.iterdir() if p.is_dir()):
            match = re.match(r"(\d+_\d{4})", folder.name)
            if match:
                folders[match.group(1)] = folder
    for video, folder in folders.items():
        frames, odd = list_frames(folder)
        if odd:
            scan.problems.append(Problem(video, folder.parent.name, "frame_name_unparsed",
                                         "ignored", f"files without a usable number: {odd[:5]}"))
        scan.videos[video] = LongVideo(folder.parent.name, video,
                                       folder.relative_to(frames_root).as_posix(), frames)
    for index, row in enumerate(codes, start=1):
        row = list(row) + [None] * (9 - len(row))
        if sheets.parse_frame(sheets._clean(row[2]))[0] is None and index == 1:
            continue  # a header row, where a version has one
        if all(sheets._blank(v) for v in row):
            continue
        scan.events.append(_event(row, index, folder_of, code_of, scan))
    return scan


def _event(row: list, index: int, folder_of: dict, code_of: dict, scan: LongScan) -> Event:
    participant = _number(row[0])
    folder = folder_of.get(participant)
    name = sheets.text(row[1])
    base = re.sub(r"_\d+$", "", name).lower()
    code = code_of.get(base)
    subject = f"s{folder}" if folder is not None else f"participant{participant}"
    video = f"{folder}_{code}" if folder is not None and code else f"{subject}_{base or '?'}"
    values = {k: sheets.parse_frame(sheets._clean(row[i]))
              for k, i in (("onset", 2), ("apex", 3), ("offset", 4))}
    onset, apex, offset = (values[k][0] for k in ("onset", "apex", "offset"))
    notes = {k: v[1] for k, v in values.items() if v[1] and not (k == "apex" and v[1] == "empty")}
    if offset == 0 and onset is not None and apex is not None:
        offset = apex + (apex - onset)
        notes["offset"] = f"0 (open); set to apex + (apex - onset) = {offset}"
    kind = sheets.text(row[7]).lower()
    return Event(video, subject, onset, apex, offset, TYPES.get(kind, kind),
                 sheets.text(row[6]).lower(), sheets.text(row[5]), index, notes)


def read_workbook(path: Path) -> dict[str, list[tuple]]:
    """Every worksheet's rows (cell values) by sheet name, in the workbook's order."""
    from openpyxl import load_workbook

    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise sheets.SheetError(f"{path}: the CAS(ME)^2 workbook is read as .xlsx (its three "
                                "sheets are needed)")
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a broken file
        raise sheets.SheetError(f"{path}: cannot be read as a workbook ({error})") from error
    try:
        tables = {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)]
                  for ws in book.worksheets}
    finally:
        book.close()
    if len(tables) < 3:
        raise sheets.SheetError(f"{path}: has {len(tables)} sheet(s); CAS(ME)^2's workbook has "
                                "the codes and the two naming-rule sheets")
    return tables


def _sheet(book: dict[str, list[tuple]], name: str, position: int) -> list[tuple]:
    """A sheet by its name, or by its position where a version renamed it."""
    named = {k.strip().lower(): v for k, v in book.items()}
    return named[name] if name in named else list(book.values())[position]


def _number(value: object) -> int | None:
    found = re.fullmatch(r"[sS]?(\d+)(?:\.0*)?", sheets.text(value))
    return int(found.group(1)) if found else None
