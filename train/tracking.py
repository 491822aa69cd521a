"""What a training run reports while it runs: DVCLive logs and a progress bar.

DVCLive writes, under the run folder's ``live/``: ``params.yaml`` (the run's settings),
``plots/metrics/folds/<fold>/<metric>.tsv`` (each fold's per-epoch loss, accuracy and
validation UF1, stepped by epoch) and ``metrics.json`` (the pooled scores), the files
``dvc params diff``, ``dvc plots`` and ``dvc metrics`` read. Wall-clock time goes to
``run.timing.json`` instead, which neither DVC nor git tracks: a rerun that takes a
different time is not a different result.

The bar counts folds x epochs and shows the time left, as preprocessing's bars do.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

LIVE = "live"
TIMING = "run.timing.json"
SCORES = ("UF1", "UAR", "ACC", "WF1", "clips", "folds")


def metric_name(fold: str, key: str) -> str:
    """A fold's metric as a DVCLive name (a path under plots/metrics/)."""
    return f"folds/{re.sub(r'[^A-Za-z0-9._/-]+', '_', fold)}/{key}"


class RunLog:
    """DVCLive and a progress bar for one run; ``epoch`` per epoch, ``finish`` once."""

    def __init__(self, out: Path, config, folds: int, progress: bool = True):
        from dvclive import Live

        self.out = Path(out)
        self.started = time.perf_counter()
        # no DVC experiment saved from inside the run and no dvc.yaml written: dvc.yaml
        # declares the run's outputs, and `dvc exp run` saves the experiment itself
        self.live = Live(dir=str(self.out / LIVE), save_dvc_exp=False, dvcyaml=None,
                         report=None, monitor_system=False)
        self.live.log_params(asdict(config))
        self.bar = tqdm(total=folds * config.epochs, desc="train", unit="epoch",
                        disable=not progress)

    def epoch(self, fold: str, row: dict) -> None:
        """One epoch of one fold: ``row`` holds ``epoch`` and the values to log."""
        self.live.step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.live.log_metric(metric_name(fold, key), float(value))
        self.bar.set_postfix_str(f"fold {fold} loss {row['loss']:.3f}", refresh=False)
        self.bar.update()

    def finish(self, metrics: dict) -> float:
        """Write the pooled scores and the run's wall-clock seconds; return the seconds."""
        self.bar.close()
        self.live.summary = {k: metrics[k] for k in SCORES if k in metrics}
        self.live.make_summary()
        seconds = round(time.perf_counter() - self.started, 1)
        (self.out / TIMING).write_text(json.dumps({"seconds": seconds}) + "\n")
        return seconds
