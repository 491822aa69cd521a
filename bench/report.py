"""The benchmark's output: one table of rows, the machine it ran on, and RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("numpy", "numba", "opencv-contrib-python", "mediapipe", "zarr", "dask",
            "distributed")


@dataclass(frozen=True)
class Row:
    """One line of the table. ``met`` is None for a figure without a target."""

    item: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None
    status_text: str | None = None   # overrides met/missed, e.g. for a placeholder

    @property
    def status(self) -> str:
        if self.status_text is not None:
            return self.status_text
        return "" if self.met is None else ("met" if self.met else "MISSED")


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable as plain text in a terminal)."""
    header = ("#", "measure", "value", "target", "status")
    cells = [header] + [(r.item, r.measure, r.value, r.target, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def machine() -> dict[str, str]:
    """What the numbers were measured on: CPU, cores, memory, load, Python, packages, commit."""
    load = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable by this run",
        "memory": f"{_mem_total_gib():.1f} GiB",
        "load average (1, 5, 15 min) at start": ", ".join(f"{v:.2f}" for v in load),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        "commit": _commit(),
    }


def results_markdown(*, command: str, smoke: bool, dataset: str, rows: list[Row],
                     about: dict[str, str], notes: list[str], raw: str = "") -> str:
    """The text of bench/RESULTS.md."""
    lines = ["# Benchmark results", ""]
    if smoke:
        lines += ["**SMOKE RUN**: smaller than the default size; it shows that the benchmark "
                  "runs, and its numbers are dominated by start-up costs. Do not quote them.", ""]
    lines += [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Reproduce with:", "",
              "```sh", command, "```", "", f"Dataset: {dataset}.", "", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in about.items()]
    lines += ["", "## Results", "", table(rows), "", "## How each row is measured", ""]
    lines += [f"- {note}" for note in notes]
    if raw:
        lines += ["", "## Raw seconds, every round", "", raw]
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.is_file():  # the hand-written causes of missed targets
        lines += ["", analysis.read_text().strip()]
    return "\n".join([*lines, ""])


def _cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                return int(text.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def _commit() -> str:
    """The checked-out commit, marked when the working tree has changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head
