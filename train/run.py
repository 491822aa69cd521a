"""A training run: a protocol's folds, one model per fold (MEGANet, FDP or MOL), pooled
metrics and figures.

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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from . import protocols
from .data import ClipTable
from .inputs import MODELS, FDPConfig, Inputs, MOLConfig, as_inputs, load_inputs
from .loop import predict, train_fold
from .metrics import confusion, scores
from .models.meganet import VARIANTS, GradientAttention


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the train stage (params.yaml section ``train``)."""

    protocol: str = "loso"            # loso | holdout | cross
    model: str = "meganet"            # meganet | fdp | mol (their knobs: sections fdp, mol)
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
            "model": self.model in MODELS,
            "labels": self.labels in (3, 5),
            "variant": self.variant in VARIANTS,
            "selection": self.selection in ("last", "validation"),
            "device": self.device in ("auto", "cpu", "cuda"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid train settings: {', '.join(bad)} ({self})")


def run_training(stores: list[str], out: Path, config: TrainConfig, progress: bool = True,
                 model_config: FDPConfig | MOLConfig | None = None) -> dict:
    """Train and evaluate under ``config.protocol``; write the run folder; return metrics.

    MEGANet reads modality stores; FDP and MOL read sequences stores, with ``model_config``
    (sections ``fdp`` / ``mol``; their defaults when None).
    """
    started = time.perf_counter()
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    table, x = load_inputs(stores, config.model, config.labels, config.modality,
                           config.input_size, model_config)
    folds = _folds(table, config)
    y = torch.from_numpy(table.labels)
    out.mkdir(parents=True, exist_ok=True)
    probabilities = np.zeros((len(table.labels), len(table.classes)))
    fold_of = np.full(len(table.labels), "", dtype=object)
    epochs, fold_rows, maps = [], [], []
    for number, fold in enumerate(folds):
        name = fold.name

        def log(row: dict, name: str = name) -> None:
            epochs.append({"fold": name, **row})
            if progress:
                print(f"fold {name} epoch {row['epoch']}: loss {row['loss']:.4f} "
                      f"accuracy {row['accuracy']:.3f}", flush=True)

        model, p = fit_fold(config, x, y, fold, number, len(table.classes), device, log)
        probabilities[fold.test] = p
        fold_of[fold.test] = name
        fold_scores = scores(table.labels[fold.test], p.argmax(1), len(table.classes))
        fold_rows.append({"fold": name, "train": len(fold.train), "validation":
                          len(fold.validation), "test": len(fold.test), **fold_scores})
        if len(maps) < config.figure_clips and isinstance(getattr(model, "input_attention",
                                                                  None), GradientAttention):
            maps += _attention_maps(model, x, table, fold.test, device,
                                    config.figure_clips - len(maps))
    tested = fold_of != ""
    predicted = probabilities.argmax(1)
    metrics = {
        **scores(table.labels[tested], predicted[tested], len(table.classes)),
        "clips": int(tested.sum()), "folds": len(folds), "classes": table.classes,
        "confusion": confusion(table.labels[tested], predicted[tested],
                               len(table.classes)).tolist(),
        "device": str(device), "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "config.json").write_text(json.dumps(
        {"config": asdict(config), "stores": [str(s) for s in stores],
         **({config.model: asdict(x.config)} if config.model != "meganet" else {})},
        indent=2) + "\n")
    _write_outputs(out, table, fold_of, probabilities, epochs, fold_rows, metrics, maps)
    return metrics


def fit_fold(config: TrainConfig, x: torch.Tensor | Inputs, y: torch.Tensor, fold: protocols.Fold,
             number: int, n_classes: int, device: torch.device,
             log: Callable[[dict], None]) -> tuple[torch.nn.Module, np.ndarray]:
    """Train fold ``number`` from seeded initial weights; its test clips' probabilities.

    ``x``: MEGANet's images or a model's inputs adapter (train/inputs.py).
    """
    inputs = as_inputs(x, y)
    settings = inputs.settings(config)
    torch.manual_seed(config.seed + number)  # the initial weights too, not only the batches
    model = train_fold(inputs.build(config.variant, n_classes), inputs, y, fold.train,
                       fold.validation, seed=config.seed + number, device=device, log=log,
                       **settings)
    return model, predict(model, inputs[fold.test], device, settings["batch_size"],
                          settings["channels_last"])


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


def _attention_maps(model, x, table: ClipTable, test: np.ndarray, device, count: int) -> list:
    model.eval()
    with torch.no_grad():
        inputs = as_inputs(x)[test[:count]]
        batch = inputs.batch(inputs.samples(train=False), False, None)["input"].to(device)
        attention = model.input_attention.attention_map(batch)[:, 0].cpu().numpy()
    return [(table.clip_ids[i], table.classes[table.labels[i]], table.images[i], a)
            for i, a in zip(test[:count], attention, strict=True)]


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
    cv2.imwrite(str(out / "confusion.png"), _confusion_image(metrics["confusion"],
                                                             table.classes))
    if maps:
        cv2.imwrite(str(out / "attention.png"), _attention_image(maps))


def _csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _confusion_image(matrix: list[list[int]], classes: list[str]) -> np.ndarray:
    """A labelled confusion matrix, rows truth and columns prediction, shaded by row share."""
    counts = np.array(matrix)
    cell, margin = 72, 120
    size = margin + cell * len(classes)
    canvas = np.full((size + 20, size + 10, 3), 255, np.uint8)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r, name in enumerate(classes):
        cv2.putText(canvas, name[:12], (4, margin + r * cell + cell // 2), font, 0.45, (0, 0, 0), 1)
        cv2.putText(canvas, name[:9], (margin + r * cell + 4, margin - 10), font, 0.4,
                    (0, 0, 0), 1)
        for c in range(len(classes)):
            shade = int(255 - 200 * share[r, c])
            x0, y0 = margin + c * cell, margin + r * cell
            cv2.rectangle(canvas, (x0, y0), (x0 + cell - 2, y0 + cell - 2),
                          (255, shade, shade), -1)
            colour = (255, 255, 255) if share[r, c] > 0.6 else (0, 0, 0)
            cv2.putText(canvas, str(counts[r, c]), (x0 + cell // 3, y0 + cell // 2 + 5), font,
                        0.6, colour, 1)
    cv2.putText(canvas, "truth (rows) / prediction (columns)", (4, 20), font, 0.45, (0, 0, 0), 1)
    return canvas


def _attention_image(maps: list) -> np.ndarray:
    """Each clip's input image beside its gradient-attention map (the paper's Figure 8)."""
    rows = []
    for clip_id, label, image, attention in maps:
        size = image.shape[0]
        heat = cv2.resize(attention, (size, size), interpolation=cv2.INTER_NEAREST)
        span = float(heat.max() - heat.min()) or 1.0
        heat = cv2.applyColorMap(((heat - heat.min()) / span * 255).astype(np.uint8),
                                 cv2.COLORMAP_JET)
        row = np.hstack([cv2.cvtColor(image, cv2.COLOR_RGB2BGR), heat])
        cv2.putText(row, f"{clip_id} ({label})", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1)
        rows.append(row)
    return np.vstack(rows)
