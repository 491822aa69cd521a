"""A training run: a protocol's folds, MEGANet per fold, pooled metrics and figures.

Everything lands in one run folder: ``metrics.json`` (for ``dvc metrics show``),
``config.json`` (the settings and stores),
``epochs.csv`` (per-epoch loss and accuracy, for ``dvc plots show``), ``folds.csv``,
``predictions.csv`` (dataset, clip, subject, fold, truth, prediction, probabilities),
``confusion.png`` and ``attention.png`` (a few clips' input beside their
gradient-attention maps).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import figures, protocols
from .data import ClipTable, load_clips, to_tensor
from .loop import predict, train_fold
from .metrics import confusion, scores
from .models.meganet import VARIANTS, GradientAttention, build
from .tracking import RunLog


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the train stage (params.yaml section ``train``)."""

    protocol: str = "loso"            # loso | holdout | cross
    labels: int = 3                   # 3 or 5 classes
    modality: str = "mesti"           # any image of the store: mesti, dynamic_raw, apex_frame...
    variant: str = "meganet"          # a name of train.model.VARIANTS (the ablations)
    input_size: int = 112             # measured knee of CPU step time; see README
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    gamma: float = 2.0                # focal loss
    seed: int = 0
    selection: str = "last"           # last | validation (carved from training subjects)
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.1
    train_on: str = ""                # cross: training dataset
    test_on: str = ""                 # cross: test dataset
    device: str = "auto"              # auto (CUDA when present) | cpu | cuda
    channels_last: bool = True
    figure_clips: int = 4

    def __post_init__(self) -> None:
        checks = {
            "protocol": self.protocol in ("loso", "holdout", "cross"),
            "labels": self.labels in (3, 5),
            "variant": self.variant in VARIANTS,
            "selection": self.selection in ("last", "validation"),
            "device": self.device in ("auto", "cpu", "cuda"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid train settings: {', '.join(bad)} ({self})")


def run_training(stores: list[str], out: Path, config: TrainConfig,
                 progress: bool = True) -> dict:
    """Train and evaluate under ``config.protocol``; write the run folder; return metrics."""
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    table = load_clips(stores, config.modality, config.labels)
    folds = _folds(table, config)
    x = to_tensor(table.images, config.input_size)
    y = torch.from_numpy(table.labels)
    out.mkdir(parents=True, exist_ok=True)
    run_log = RunLog(out, config, len(folds), progress)
    probabilities = np.zeros((len(table.labels), len(table.classes)))
    fold_of = np.full(len(table.labels), "", dtype=object)
    epochs, fold_rows, maps = [], [], []
    for number, fold in enumerate(folds):
        name = fold.name

        def log(row: dict, name: str = name) -> None:
            epochs.append({"fold": name, **row})
            run_log.epoch(name, row)

        model, p = fit_fold(config, x, y, fold, number, len(table.classes), device, log)
        probabilities[fold.test] = p
        fold_of[fold.test] = name
        fold_scores = scores(table.labels[fold.test], p.argmax(1), len(table.classes))
        fold_rows.append({"fold": name, "train": len(fold.train), "validation":
                          len(fold.validation), "test": len(fold.test), **fold_scores})
        if len(maps) < config.figure_clips and isinstance(model.input_attention,
                                                          GradientAttention):
            maps += figures.attention_maps(model, x, fold.test, device,
                                           config.figure_clips - len(maps))
    tested = fold_of != ""
    predicted = probabilities.argmax(1)
    metrics = {
        **scores(table.labels[tested], predicted[tested], len(table.classes)),
        "clips": int(tested.sum()), "folds": len(folds), "classes": table.classes,
        "confusion": confusion(table.labels[tested], predicted[tested],
                               len(table.classes)).tolist(),
        "device": str(device),
    }
    (out / "config.json").write_text(json.dumps(
        {"config": asdict(config), "stores": [str(s) for s in stores]}, indent=2) + "\n")
    _write_outputs(out, table, fold_of, probabilities, epochs, fold_rows, metrics, maps)
    figures.write_run_figures(out, table, probabilities, metrics, maps, config)
    metrics["seconds"] = run_log.finish(metrics)  # in run.timing.json, not metrics.json
    return metrics


def fit_fold(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, fold: protocols.Fold,
             number: int, n_classes: int, device: torch.device,
             log: Callable[[dict], None]) -> tuple[torch.nn.Module, np.ndarray]:
    """Train fold ``number`` from seeded initial weights; its test clips' probabilities."""
    torch.manual_seed(config.seed + number)  # the initial weights too, not only the batches
    model = train_fold(build(config.variant, n_classes), x, y, fold.train, fold.validation,
                       epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                       weight_decay=config.weight_decay, gamma=config.gamma,
                       seed=config.seed + number, device=device,
                       channels_last=config.channels_last, log=log)
    return model, predict(model, x[fold.test], device, config.batch_size, config.channels_last)


def compare_modalities(stores: list[str], out: Path, config: TrainConfig,
                       modalities: list[str], progress: bool = True) -> str:
    """One run per input modality with the same network and protocol; a markdown table."""
    lines = ["| input | UF1 | UAR | ACC | WF1 |", "|---|---|---|---|---|"]
    for modality in modalities:
        m = run_training(stores, out / modality, replace(config, modality=modality), progress)
        lines.append(f"| {modality} | {m['UF1']:.3f} | {m['UAR']:.3f} | {m['ACC']:.3f} | "
                     f"{m['WF1']:.3f} |")
    header = (f"{config.protocol}, {config.labels} classes, {config.variant}, "
              f"input {config.input_size}px, {config.epochs} epochs, seed {config.seed}; "
              f"stores: {', '.join(stores)}")
    table = "\n".join([header, "", *lines, ""])
    (out / "comparison.md").write_text(table)
    return table


def _folds(table: ClipTable, config: TrainConfig) -> list[protocols.Fold]:
    if config.protocol == "loso":
        folds = protocols.loso(table.subjects)
    elif config.protocol == "holdout":
        folds = protocols.holdout(table.labels, config.holdout_fraction, config.seed)
    else:
        folds = protocols.cross(table.datasets, config.train_on, config.test_on)
    if config.selection == "validation":
        folds = [protocols.with_validation(f, table.subjects, config.validation_fraction,
                                           config.seed + i) for i, f in enumerate(folds)]
    return folds


def _write_outputs(out: Path, table: ClipTable, fold_of, probabilities, epochs, fold_rows,
                   metrics: dict, maps: list) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _csv(out / "epochs.csv", epochs)
    _csv(out / "folds.csv", fold_rows)
    rows = []
    for i in np.flatnonzero(fold_of != ""):
        row = {"dataset": table.datasets[i], "clip_id": table.clip_ids[i],
               "subject": table.subjects[i], "fold": fold_of[i],
               "truth": table.classes[table.labels[i]],
               "prediction": table.classes[int(probabilities[i].argmax())]}
        row.update({f"p_{c}": round(float(p), 6) for c, p in zip(table.classes,
                                                                 probabilities[i], strict=True)})
        rows.append(row)
    _csv(out / "predictions.csv", rows)


def _csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
