"""What a training run reports while it runs: DVCLive logs and a progress bar.

DVCLive writes, under the run folder's ``live/``: ``params.yaml`` (the run's settings),
``plots/metrics/folds/<fold>/<metric>.tsv`` (each fold's per-epoch loss, accuracy and
validation UF1, stepped by epoch) and ``metrics.json`` (the pooled scores), the files
``dvc params diff``, ``dvc plots`` and ``dvc metrics`` read. Wall-clock time goes to
``run.timing.json`` instead, which neither DVC nor git tracks: a rerun that takes a
different time is not a different result.

The bar counts folds x epochs and shows the time left, as preprocessing's bars do. Without
it (``--no-progress``, as DVC stages run) one line per finished fold says how far the run
is, so a long stage is not silent.

DVCLive's run is ended by its own ``Live.end()`` (in ``finish``, or on leaving a ``with``
block early), and each fold's series has its own step counter, 1 to its number of epochs.
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
    """DVCLive and a progress bar for one run; ``epoch`` per epoch, ``fold`` per finished
    fold, ``finish`` once. Usable as a context manager, which ends DVCLive's run however the
    block is left."""

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
        self.progress = progress
        self.folds, self.folds_done = folds, 0
        self.steps: dict[str, int] = {}  # each fold's own step counter
        self.ended = False

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def end(self) -> None:
        """End DVCLive's run (it writes the summary) and close the bar; once."""
        if not self.ended:
            self.ended = True
            self.bar.close()
            self.live.end()

    def epoch(self, fold: str, row: dict) -> None:
        """One epoch of one fold: ``row`` holds ``epoch`` and the values to log, logged at
        the fold's next step."""
        self.steps[fold] = self.steps.get(fold, 0) + 1
        self.live.step = self.steps[fold]
        for key, value in row.items():
            if key != "epoch":
                self.live.log_metric(metric_name(fold, key), float(value))
        self.bar.set_postfix_str(f"fold {fold} loss {row['loss']:.3f}", refresh=False)
        self.bar.update()

    def fold(self, fold: str, scores: dict, clips: int) -> None:
        """One finished fold; without the bar, one line saying so (DVC stages print it)."""
        self.folds_done += 1
        if not self.progress:
            elapsed = time.perf_counter() - self.started
            print(f"train: fold {self.folds_done}/{self.folds} ({fold}) done: "
                  f"UF1 {scores['UF1']:.3f}, UAR {scores['UAR']:.3f} on {clips} clip(s); "
                  f"{elapsed:.0f} s so far", flush=True)

    def finish(self, metrics: dict, resources: dict | None = None) -> float:
        """Write the pooled scores, and the run's wall-clock seconds with ``resources``
        (what it took, which differs run to run: peak memory per fold); return the
        seconds."""
        self.live.summary = {k: metrics[k] for k in SCORES if k in metrics}
        self.end()
        seconds = round(time.perf_counter() - self.started, 1)
        (self.out / TIMING).write_text(json.dumps({"seconds": seconds, **(resources or {})})
                                       + "\n")
        return seconds
