"""Annotation sheets: find the header row, look columns up by name, parse frame cells.

Column positions differ between sheet versions and some sheets open with a preamble,
so columns are always found by their (normalised) names, never by position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd


class SheetError(ValueError):
    """A sheet that cannot be read as the dataset's annotation sheet."""


def normalise(name: object) -> str:
    """Lower-case letters and digits only: 'Estimated Emotion' -> 'estimatedemotion'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower()) if name is not None else ""


def read_table(path: Path, columns: Mapping[str, Sequence[str]],
               required: Sequence[str]) -> list[dict[str, object]]:
    """Rows of a sheet (.xlsx, .xls or .csv) as dicts keyed by logical column name.

    ``columns`` maps a logical name to the normalised header spellings that may carry it.
    The header is the first row (within the first 40) holding every required column, so
    preambles such as SAMM's symbol key are skipped. Each row dict also carries
    ``_row``, the 1-based row number in the sheet, for messages.
    """
    if not path.is_file():
        raise SheetError(f"{path}: sheet not found")
    _refuse_encrypted(path)
    # Cells are read literally from every kind of sheet: pandas' missing-value list (and its
    # openpyxl reader, for error cells such as #N/A) would turn an N/A apex or an emotion
    # 'None' into an empty cell in .xlsx only, where the same .csv cell stays text.
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            table = pd.read_csv(path, header=None, dtype=object, keep_default_na=False)
        elif suffix in (".xlsx", ".xlsm"):
            table = _read_xlsx(path)
        else:
            table = pd.read_excel(path, header=None, dtype=object, keep_default_na=False)
    except Exception as error:  # pandas and openpyxl raise many types for a broken file
        raise SheetError(f"{path}: cannot be read as a sheet ({error})") from error

    wanted = {name: {normalise(a) for a in aliases} for name, aliases in columns.items()}
    for header_index in range(min(40, len(table))):
        header = [normalise(v) if not _blank(v) else "" for v in table.iloc[header_index]]
        found: dict[str, int] = {}
        for name, aliases in wanted.items():
            for position, cell in enumerate(header):
                if cell in aliases:
                    found[name] = position
                    break
        if all(name in found for name in required):
            break
    else:
        first = [str(v) for v in table.iloc[0]] if len(table) else []
        missing = ", ".join(required)
        raise SheetError(f"{path}: no header row with the columns {missing}; first row: {first}")

    rows = []
    for index in range(header_index + 1, len(table)):
        values = table.iloc[index]
        if all(_blank(v) for v in values):
            continue
        row: dict[str, object] = {name: _clean(values.iloc[pos]) for name, pos in found.items()}
        row["_row"] = index + 1
        rows.append(row)
    return rows


def _read_xlsx(path: Path) -> pd.DataFrame:
    """The first worksheet's cell values as they are stored (error cells as their text)."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()
    return pd.DataFrame(rows, dtype=object)


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


def _refuse_encrypted(path: Path) -> None:
    """An .xlsx saved with a password is an OLE2 container holding an 'EncryptedPackage'
    stream; pandas would take it for an old .xls and ask for xlrd. Say what it is."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(_OLE2):
        if _ENCRYPTED in head:
            raise SheetError(f"{path}: the workbook is encrypted (password-protected); save "
                             "an unprotected copy or export the sheet as .csv")
        raise SheetError(f"{path}: is an old binary .xls workbook named .xlsx; save it as "
                         ".xlsx or .csv")


def _blank(value: object) -> bool:
    if isinstance(value, float):
        return value != value  # NaN, pandas' empty cell
    return value is None or str(value).strip() == ""


def _clean(value: object) -> object:
    if _blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    return value


def parse_frame(value: object) -> tuple[int | None, str | None]:
    """A frame number from a sheet cell, and a note when the cell was not a plain number.

    Plain integers (also 46.0 or '46') give no note. '5619?' (an unsure mark) gives the
    number with a note; 'a/b' (SAMM's "either") gives a with a note; anything else,
    CASME II's lone '/' included, gives None with a note naming the cell's text.
    """
    if value is None:
        return None, "empty"
    if isinstance(value, bool):
        return None, f"{value!r} is not a frame number"
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        if value.is_integer():
            return int(value), None
        return None, f"{value!r} is not a whole frame number"
    text = str(value).strip()
    if text.isdigit():
        return int(text), None
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text)), None
    unsure = re.fullmatch(r"(\d+)\s*\?", text)
    if unsure:
        return int(unsure.group(1)), f"'{text}' is marked unsure; took {unsure.group(1)}"
    either = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
    if either:
        return int(either.group(1)), f"'{text}' gives two frames; took the first"
    return None, f"'{text}' is not a frame number"


def text(value: object) -> str:
    """A cell as stripped text ('' for blank); integral floats lose their '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
