"""The manifest files: one CSV row per usable clip, plus the validation report.

CSV rather than Parquet: a researcher reads and diffs it in any editor or spreadsheet,
DVC diffs it line by line, and pandas loads it with ``pd.read_csv``. List fields
(``frames``, ``frame_numbers``) are joined with ';'. Paths are ``root`` (as given to the
stage, usually relative to the project) joined with ``source``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path

from . import RECIPES
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


def build_manifest(dataset: str, root: Path, out: Path, *, sheet: Path | None = None,
                   overrides: Path | None = None,
                   config: ManifestConfig = ManifestConfig()) -> dict[str, object]:
    """Read, validate and write one dataset's manifest into ``out``; return its counts."""
    if dataset not in RECIPES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(RECIPES)}")
    scan = RECIPES[dataset].prepare(Path(root), sheet)
    records, problems = validate(scan, load_overrides(overrides), config)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(records, out / MANIFEST)
    _write_problems(problems, out / PROBLEMS)
    counts = _counts(scan.clips, records, problems)
    (out / COUNTS).write_text(json.dumps(counts, indent=2) + "\n")
    (out / REPORT).write_text(_report(dataset, scan.root, scan.sheet, counts, problems))
    return counts


def write_manifest(records: list[ClipRecord], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in records:
            row = asdict(record)
            for key in _LISTS:
                row[key] = ";".join(str(v) for v in row[key])
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def read_manifest(path: Path) -> list[ClipRecord]:
    """Manifest rows back as records (the inverse of :func:`write_manifest`)."""
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a manifest; missing columns {sorted(missing)}")
        records = []
        for row in reader:
            values: dict[str, object] = dict(row)
            values["frames"] = row["frames"].split(";") if row["frames"] else []
            values["frame_numbers"] = [int(v) for v in row["frame_numbers"].split(";") if v]
            values["onset"], values["offset"] = int(row["onset"]), int(row["offset"])
            values["apex"] = int(row["apex"]) if row["apex"] else None
            values["label3"] = row["label3"] or None
            values["label5"] = row["label5"] or None
            values["fps"] = float(row["fps"])
            records.append(ClipRecord(**values))  # type: ignore[arg-type]
    return records


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
