"""One markdown table of finished training runs, read from their run folders only."""

from __future__ import annotations

import json
from pathlib import Path


def runs_table(runs: list[Path]) -> str:
    """A row per run folder (``config.json`` and ``metrics.json`` of ``mesti train``): model,
    its ablation switches, protocol, stores, clips, folds, the pooled metrics and the
    architecture preset that ran (``-`` for a model without presets)."""
    lines = ["| run | model | protocol | stores | clips | folds | UF1 | UAR | ACC | WF1 | preset |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        saved = json.loads((Path(run) / "config.json").read_text())
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        config = saved["config"]
        model = config.get("model", "meganet")
        name = config["variant"] if model == "meganet" else model
        switches = {k: v for k, v in (saved.get(model) or {}).items()
                    if k in ("reconstruction", "flow", "landmarks") and v is False}
        if switches:
            name += " (no " + ", no ".join(switches) + ")"
        stores = ", ".join(Path(s).name for s in saved["stores"])
        lines.append(f"| {Path(run).name} | {name} | {config['protocol']}, "
                     f"{config['labels']} classes | {stores} | {metrics['clips']} | "
                     f"{metrics['folds']} | {metrics['UF1']:.3f} | {metrics['UAR']:.3f} | "
                     f"{metrics['ACC']:.3f} | {metrics['WF1']:.3f} | "
                     f"{(saved.get(model) or {}).get('preset', '-')} |")
    return "\n".join(lines) + "\n"
