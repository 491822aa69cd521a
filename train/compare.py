"""One markdown table of finished training runs, read from their run folders only."""

from __future__ import annotations

import json
from pathlib import Path

# Written into a run folder when ``mesti train`` starts it and removed when the run has
# written every output: a folder that still holds it was interrupted (or is running).
UNFINISHED = "UNFINISHED"
FINISHED_FILES = ("config.json", "metrics.json")


class RunFolderError(ValueError):
    """A folder given as a run that is not a finished ``mesti train`` run."""


def check_finished(run: Path) -> Path:
    """``run``, if it is a finished run folder; otherwise an error saying what it is."""
    run = Path(run)
    if (run / UNFINISHED).exists():
        raise RunFolderError(f"{run}: not a finished run: mesti train was interrupted there "
                             f"(or is still running; {UNFINISHED} is there); train it again")
    missing = [name for name in FINISHED_FILES if not (run / name).is_file()]
    if missing:
        raise RunFolderError(f"{run}: not a finished run of mesti train (no "
                             f"{' or '.join(missing)}); give a folder mesti train wrote")
    return run


def runs_table(runs: list[Path]) -> str:
    """A row per run folder (``config.json`` and ``metrics.json`` of ``mesti train``): model,
    its ablation switches, protocol, stores, clips, folds, the pooled metrics and the
    architecture preset that ran (``-`` for a model without presets)."""
    lines = ["| run | model | protocol | stores | clips | folds | UF1 | UAR | ACC | WF1 | preset |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in map(check_finished, runs):
        saved = json.loads((Path(run) / "config.json").read_text())
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        config = saved["config"]
        model = config.get("model", "meganet")
        name = config["variant"] if model == "meganet" else model
        section = saved.get(model) or {}
        notes = [f"no {k}" for k, v in section.items()
                  if k in ("reconstruction", "flow", "landmarks") and v is False]
        if notes:
            name += " (" + ", ".join(notes) + ")"
        stores = ", ".join(Path(s).name for s in saved["stores"])
        lines.append(f"| {Path(run).name} | {name} | {config['protocol']}, "
                     f"{config['labels']} classes | {stores} | {metrics['clips']} | "
                     f"{metrics['folds']} | {metrics['UF1']:.3f} | {metrics['UAR']:.3f} | "
                     f"{metrics['ACC']:.3f} | {metrics['WF1']:.3f} | "
                     f"{(saved.get(model) or {}).get('preset', '-')} |")
    return "\n".join(lines) + "\n"
