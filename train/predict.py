"""Per-fold weights of a run, and its test predictions recomputed from them.

A run folder holds ``weights/fold_NNN.pt`` (a plain ``state_dict``, loadable with
``torch.load(..., weights_only=True)``) for each fold and ``weights/folds.json`` naming each
fold's file and test clips (dataset, clip id). ``predict_run`` rebuilds the run's clip table
from the stores and its config.json, loads each fold's weights and writes the predictions in
the run's own ``predictions.csv`` layout; on CPU the file is byte-identical to the run's
(``mesti predict``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import to_tensor
from .loop import predict
from .models.meganet import build
from .report import prediction_rows, write_csv

WEIGHTS = "weights"
INDEX = "folds.json"


def save_fold(out: Path, number: int, name: str, model: nn.Module, test: list[tuple[str, str]],
              index: list[dict]) -> None:
    """Write fold ``number``'s weights and add it to the folds index (rewritten each time, so
    a run stopped half-way still lists the folds it saved)."""
    folder = out / WEIGHTS
    folder.mkdir(parents=True, exist_ok=True)
    file = f"fold_{number:03d}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, folder / file)
    index.append({"fold": name, "file": file, "test": [list(t) for t in test]})
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")


def predict_run(stores: list[str], run_dir: Path, out_csv: Path) -> int:
    """Recompute a run's test predictions on CPU from its weights into ``out_csv``; the
    number of clips predicted."""
    from .run import TrainConfig, prepare_table  # run.py saves weights through this module

    saved = json.loads((run_dir / "config.json").read_text())
    config = TrainConfig(**saved["config"])
    if config.model != "meganet":
        raise ValueError(f"{run_dir}: a {config.model} run; mesti predict reproduces MEGANet "
                         "runs (FDP and MOL runs keep their weights, but no predict yet)")
    index_file = run_dir / WEIGHTS / INDEX
    if not index_file.is_file():
        raise FileNotFoundError(f"{run_dir}: no {WEIGHTS}/{INDEX}; was the run made with "
                                f"save_weights: false, or with several seeds (predict one "
                                f"seed_N folder)?")
    folds = json.loads(index_file.read_text())
    table = prepare_table(stores, config)
    where = {(d, c): i for i, (d, c) in enumerate(zip(table.datasets, table.clip_ids,
                                                      strict=True))}
    x = to_tensor(table.images, config.input_size)
    probabilities = np.zeros((len(table.labels), len(table.classes)))
    fold_of = np.full(len(table.labels), "", dtype=object)
    device = torch.device("cpu")
    for fold in folds:
        missing = [tuple(t) for t in fold["test"] if tuple(t) not in where]
        if missing:
            raise ValueError(f"fold {fold['fold']}: test clips {missing} are not in {stores}")
        test = np.array([where[tuple(t)] for t in fold["test"]], np.int64)
        model = build(config.variant, len(table.classes), **config.switches)
        state = torch.load(run_dir / WEIGHTS / fold["file"], map_location="cpu",
                           weights_only=True)
        model.load_state_dict(state)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        probabilities[test] = predict(model, x[test], device, config.batch_size,
                                      config.channels_last)
        fold_of[test] = fold["fold"]
    rows = prediction_rows(table.datasets, table.clip_ids, table.subjects, table.classes,
                           table.labels, fold_of, probabilities)
    write_csv(out_csv, rows)
    return len(rows)
