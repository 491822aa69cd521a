"""The manifest files: one CSV row per usable clip, plus the validation report.

CSV rather than Parquet: a researcher reads and diffs it in any editor or spreadsheet,
DVC diffs it line by line, and pandas loads it with ``pd.read_csv``. List fields
(``frames``, ``frame_numbers``) are joined with ';'. Paths are ``root`` joined with
``source``; ``root`` is written relative to the manifest's own folder (absolute only when
asked), so a manifest moves with its data and reads the same from any working directory.
:func:`read_manifest` gives ``root`` back absolute.

A manifest is untrusted input to the next stage (edited by hand, or the wrong file
given): reading it checks every row and refuses the whole file, naming the line and
column, before any stage writes anything.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path

from . import LONG_VIDEO_RECIPES, RECIPES
from .long_videos import write_long_manifest
from .overrides import load_overrides
from .records import ClipRecord, Problem
from .validate import ManifestConfig, validate

MANIFEST = "manifest.csv"
PROBLEMS = "problems.csv"
REPORT = "report.md"
COUNTS = "counts.json"

COLUMNS = [f.name for f in fields(ClipRecord)]
_LISTS = {"frames", "frame_numbers"}
_OPTIONAL_INT = {"apex"}


class ManifestError(ValueError):
    """A manifest that cannot be used (not a manifest, empty, a bad row): names file and line."""


class NoUsableClips(ManifestError):
    """A dataset with no usable clip: no manifest is written, the report says why."""


def build_manifest(dataset: str, root: Path, out: Path, *, sheet: Path | None = None,
                   overrides: Path | None = None,
                   config: ManifestConfig = ManifestConfig(),
                   absolute_paths: bool = False) -> dict[str, object]:
    """Read, validate and write one dataset's manifest into ``out``; return its counts.

    When no clip is usable, the problems, counts and report are written (they say why) but
    no manifest: :class:`NoUsableClips` is raised instead, naming the dataset folder.
    """
    if dataset not in RECIPES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(RECIPES)}")
    scan = RECIPES[dataset].prepare(Path(root), sheet)
    records, problems = validate(scan, load_overrides(overrides), config)
    out.mkdir(parents=True, exist_ok=True)
    _write_problems(problems, out / PROBLEMS)
    counts = _counts(scan.clips, records, problems)
    (out / COUNTS).write_text(json.dumps(counts, indent=2) + "\n")
    (out / REPORT).write_text(_report(dataset, scan.root, scan.sheet, counts, problems))
    if not records:
        excluded = Counter(p.code for p in problems if p.action == "excluded")
        why = (", ".join(f"{code} x{n}" for code, n in excluded.most_common())
               if excluded else "no clip found")
        raise NoUsableClips(f"{root}: no usable {dataset} clip of {counts['clips_found']} "
                            f"found ({why}); no manifest written, see {out / REPORT}")
    write_manifest(records, out / MANIFEST, absolute_paths=absolute_paths)
    return counts


def write_manifest(records: list[ClipRecord], path: Path, *,
                   absolute_paths: bool = False) -> None:
    """Write ``records``; each ``root`` (absolute, or relative to the working directory) is
    stored relative to ``path``'s folder, or absolute with ``absolute_paths``."""
    folder = Path(path).parent.absolute()
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in records:
            row = asdict(record)
            for key in _LISTS:
                row[key] = ";".join(str(v) for v in row[key])
            row["root"] = _stored_root(record.root, folder, absolute_paths)
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _stored_root(root: str, folder: Path, absolute: bool) -> str:
    full = os.path.normpath(Path(root).absolute())
    if absolute:
        return Path(full).as_posix()
    try:
        return Path(os.path.relpath(full, folder)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(full).as_posix()


_KINDS = ("images", "video")


def read_manifest(path: Path) -> list[ClipRecord]:
    """Manifest rows back as records (the inverse of :func:`write_manifest`).

    Every row is checked (numbers, kinds, window, list lengths, unique clip ids) and a
    problem refuses the file with a :class:`ManifestError` naming its line and column;
    a manifest without rows is refused too. ``root`` comes back absolute.
    """
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm"):
        raise ManifestError(f"{path}: is a spreadsheet, not a manifest; give the "
                            f"{MANIFEST} that 'mesti manifest' wrote")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    folder = path.parent.absolute()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(reader.fieldnames or [])
            if missing:
                raise ManifestError(f"{path}: not a manifest; missing columns "
                                    f"{sorted(missing)}")
            records, lines = [], {}
            for row in reader:
                line = reader.line_num
                record = _parse_row(row, f"{path}, line {line}", folder)
                if record.clip_id in lines:
                    raise ManifestError(f"{path}: clip id {record.clip_id!r} is on lines "
                                        f"{lines[record.clip_id]} and {line}; clip ids must "
                                        "be unique")
                lines[record.clip_id] = line
                records.append(record)
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not a manifest (not UTF-8 text)") from error
    except csv.Error as error:
        raise ManifestError(f"{path}: not a manifest ({error})") from error
    if not records:
        raise ManifestError(f"{path}: the manifest holds no clip (only its header); "
                            "nothing to do")
    return records


def _parse_row(row: dict[str, str | None], where: str, folder: Path) -> ClipRecord:
    """One CSV row as a record, or a ManifestError naming the row and the column."""
    if None in row or any(row[c] is None for c in COLUMNS):
        raise ManifestError(f"{where}: has {'more' if None in row else 'fewer'} cells than "
                            "the header")

    def number(column: str, cast, *, optional: bool = False):
        text = (row[column] or "").strip()
        if not text and optional:
            return None
        try:
            value = cast(text)
        except ValueError:
            raise ManifestError(f"{where}, column {column}: {text!r} is not "
                                f"{'an integer' if cast is int else 'a number'}") from None
        return value

    values: dict[str, object] = {column: row[column] for column in COLUMNS}  # extra: ignored
    for column in ("dataset", "clip_id", "source"):
        if not (row[column] or "").strip():
            raise ManifestError(f"{where}, column {column}: is empty")
    if row["kind"] not in _KINDS:
        raise ManifestError(f"{where}, column kind: {row['kind']!r} is not one of {_KINDS}")
    values["frames"] = row["frames"].split(";") if row["frames"] else []
    try:
        values["frame_numbers"] = [int(v) for v in row["frame_numbers"].split(";") if v]
    except ValueError:
        raise ManifestError(f"{where}, column frame_numbers: {row['frame_numbers']!r} is not "
                            "a ';'-separated list of integers") from None
    if not values["frames"] or len(values["frames"]) != len(values["frame_numbers"]):
        raise ManifestError(f"{where}, column frames: {len(values['frames'])} frame(s) for "
                            f"{len(values['frame_numbers'])} frame number(s)")
    values["onset"], values["offset"] = number("onset", int), number("offset", int)
    values["apex"] = number("apex", int, optional=True)
    if values["onset"] > values["offset"]:
        raise ManifestError(f"{where}, column onset: {values['onset']} is after the offset "
                            f"{values['offset']}")
    values["fps"] = number("fps", float)
    if not math.isfinite(values["fps"]) or values["fps"] <= 0:
        raise ManifestError(f"{where}, column fps: {row['fps']!r} is not a frame rate")
    values["label3"] = row["label3"] or None
    values["label5"] = row["label5"] or None
    _check_labels(row, where)
    root = Path(row["root"] or ".")
    values["root"] = root.as_posix() if root.is_absolute() else \
        Path(os.path.normpath(folder / root)).as_posix()
    return ClipRecord(**values)  # type: ignore[arg-type]


def _check_labels(row: dict[str, str | None], where: str) -> None:
    """The row's dataset is a known one, its emotion is in that dataset's vocabulary and
    label3 and label5 are what the dataset's mapping gives for it (as `mesti manifest`
    wrote them): a hand-edited label that disagrees would be stored and trained on."""
    dataset = row["dataset"]
    if dataset not in RECIPES:
        raise ManifestError(f"{where}, column dataset: {dataset!r} is not one of "
                            f"{sorted(RECIPES)}")
    labels = RECIPES[dataset].LABELS
    emotion = row["emotion"] or ""
    if emotion and emotion not in labels.known:
        raise ManifestError(f"{where}, column emotion: {emotion!r} is not a {dataset} emotion "
                            f"({', '.join(sorted(labels.known))})")
    expected = dict(zip(("label3", "label5"), labels.labels(emotion) if emotion else
                        (None, None), strict=True))
    for column, want in expected.items():
        got = row[column] or None
        if got != want:
            raise ManifestError(
                f"{where}, column {column}: {got!r} disagrees with the emotion {emotion!r}, "
                f"which {dataset}'s mapping makes {want!r}; fix the emotion (or use an "
                "overrides file with mesti manifest), not the label")


def _write_problems(problems: list[Problem], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Problem)])
        writer.writeheader()
        writer.writerows(asdict(p) for p in problems)


def _counts(candidates, records: list[ClipRecord], problems: list[Problem]) -> dict[str, object]:
    excluded = {p.clip_id for p in problems if p.action == "excluded"}
    return {
        "clips_found": len(candidates) + sum(p.code.startswith("row_without") for p in problems),
        "clips_ok": len(records),
        "clips_excluded": len(excluded),
        "subjects": len({r.subject for r in records}),
        "frames": sum(r.n_frames for r in records),
        "problems": dict(sorted(Counter(p.code for p in problems).items())),
        "label3": dict(sorted(Counter(r.label3 for r in records if r.label3).items())),
        "label5": dict(sorted(Counter(r.label5 for r in records if r.label5).items())),
    }


def _report(dataset: str, root: Path, sheet: Path | None, counts: dict,
            problems: list[Problem]) -> str:
    lines = [
        f"# Manifest report: {dataset}",
        "",
        f"- frames root: `{root}`",
        f"- sheet: `{sheet}`" if sheet else "- sheet: none (labels from folders)",
        f"- clips usable: {counts['clips_ok']} of {counts['clips_found']} "
        f"({counts['clips_excluded']} excluded), {counts['subjects']} subjects, "
        f"{counts['frames']} frames",
        f"- 3-class: {counts['label3'] or 'none'}",
        f"- 5-class: {counts['label5'] or 'none'}",
        "",
    ]
    if not problems:
        return "\n".join([*lines, "No problems found.", ""])
    lines += ["| clip | subject | problem | action | detail |", "|---|---|---|---|---|"]
    for p in sorted(problems, key=lambda p: (p.action != "excluded", p.clip_id, p.code)):
        detail = p.detail.replace("|", "\\|")
        lines.append(f"| {p.clip_id} | {p.subject} | {p.code} | {p.action} | {detail} |")
    return "\n".join([*lines, ""])


def build_long_manifest(dataset: str, root: Path, out: Path, *, sheet: Path | None = None,
                        max_missing_fraction: float = 0.1,
                        absolute_paths: bool = False) -> dict[str, object]:
    """Read ``dataset``'s long videos at ``root`` with its recipe and write the manifest."""
    if dataset not in LONG_VIDEO_RECIPES:
        raise ValueError(f"unknown long-video dataset {dataset!r}; known: "
                         f"{', '.join(LONG_VIDEO_RECIPES)}")
    scan = LONG_VIDEO_RECIPES[dataset].prepare(Path(root), sheet)
    return write_long_manifest(scan, out, max_missing_fraction, absolute_paths)
