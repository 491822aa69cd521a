"""A training run: a protocol's folds, one model per fold (MEGANet, FDP or MOL), pooled
metrics and figures.

Everything lands in one run folder: ``metrics.json`` (for ``dvc metrics show``),
``config.json`` (the settings and stores),
``epochs.csv`` (per-epoch loss and accuracy, for ``dvc plots show``), ``folds.csv``,
``predictions.csv`` (dataset, clip, subject, fold, truth, prediction, probabilities),
``confusion.png`` and ``attention.png`` (a few clips' input beside their
gradient-attention maps), ``report.md`` (pooled and per-dataset figures) and
``weights/`` (each fold's state_dict, for ``mesti predict``). With several seeds each seed
gets its own such folder (``seed_N/``) and the run folder holds their mean and spread.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from . import clip_lists, figures, protocols, report
from .cluster import run_folds
from .compare import UNFINISHED
from .config import TrainConfig
from .data import EXPANSION, ClipTable
from .determinism import deterministic
from .folds import (
    PARTIAL,
    fit_fold,
    load_data,
    make_task,
    maps_wanted,
    results_folder,
    run_key,
)
from .inputs import FDPConfig, MOLConfig, scored_rows
from .metrics import confusion, scores
from .predict import save_fold
from .table import prepare_table, select_clips
from .tracking import RunLog

__all__ = ["TrainConfig", "compare_modalities", "fit_fold", "prepare_table", "run_training",
           "select_clips"]


def run_training(stores: list[str], out: Path, config: TrainConfig, progress: bool = True,
                 model_config: FDPConfig | MOLConfig | None = None, cluster=None) -> dict:
    """Train and evaluate under ``config.protocol``, once per seed; write the run folder;
    return metrics (over several seeds: their means, with ``std`` and ``per_seed``).

    MEGANet reads modality stores; FDP and MOL read sequences stores, with ``model_config``
    (sections ``fdp`` / ``mol``; their defaults when None). ``cluster`` (the runner's
    ClusterOptions) runs the folds as Dask tasks; None or ``workers=0``: in this process.
    The outputs are the same bytes either way.
    """
    if len(config.seeds) <= 1:
        seed = config.seeds[0] if config.seeds else config.seed
        return _train_once(stores, out, replace(config, seed=seed), progress, model_config,
                           cluster)
    out.mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text("mesti train is writing this run; removed when it ends\n")
    runs = [_train_once(stores, out / f"seed_{s}", replace(config, seed=s, seeds=()),
                        progress, model_config, cluster) for s in config.seeds]
    metrics = report.aggregate_seeds(runs, list(config.seeds))
    (out / "config.json").write_text(json.dumps(
        {"config": asdict(config), "stores": [str(s) for s in stores],
         "seed_runs": [f"seed_{s}" for s in config.seeds]}, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(report.markdown(metrics, f"{config.variant} on "
                                                   f"{', '.join(map(str, stores))}"))
    (out / UNFINISHED).unlink()
    return metrics


def _train_once(stores: list[str], out: Path, config: TrainConfig, progress: bool,
                model_config: FDPConfig | MOLConfig | None, cluster=None) -> dict:
    """One seed's run folder."""
    with deterministic(config.deterministic, config.threads) as determinism:
        return _train_seed(stores, out, config, progress, determinism, model_config, cluster)


def _train_seed(stores: list[str], out: Path, config: TrainConfig, progress: bool,
                determinism: dict, model_config: FDPConfig | MOLConfig | None,
                cluster=None) -> dict:
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    table, x = load_data(stores, config, model_config)
    folds = _folds(table, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text("mesti train is writing this run; removed when it ends\n")
    results = results_folder(out, run_key(stores, config, model_config))
    tasks = [make_task(stores, config, model_config, number, fold, len(table.classes),
                       device.type, results, wanted) for number, (fold, wanted) in enumerate(
                           zip(folds, maps_wanted(folds, config.figure_clips), strict=True))]
    run_log = RunLog(out, config, len(folds), progress)
    scored, rows_of = scored_rows(table, None if config.model == "meganet" else x)
    probabilities = np.zeros((len(scored.labels), len(table.classes)))
    fold_of = np.full(len(scored.labels), "", dtype=object)
    epochs, fold_rows, maps, weights = [], [], [], []

    def log(name: str, row: dict) -> None:
        epochs.append({"fold": name, **row})
        run_log.epoch(name, row)

    pinned, taken = [], []
    for fold, (result, logged) in zip(folds, run_folds(tasks, cluster, (table, x), log),
                                      strict=True):
        name, number = fold.name, result["number"]
        if not logged:  # trained elsewhere or earlier: its epochs, in fold order
            for row in result["epochs"]:
                log(name, row)
        if config.save_weights:
            save_fold(out, number, name, result["state"], [
                (table.datasets[i], table.clip_ids[i]) for i in fold.test], weights)
        p = result["probabilities"].numpy()
        test = rows_of(fold.test)
        probabilities[test] = p
        fold_of[test] = name
        fold_scores = scores(scored.labels[test], p.argmax(1), len(table.classes))
        fold_rows.append({"fold": name, "train": len(fold.train), "validation":
                          len(fold.validation), "test": len(test), **fold_scores})
        run_log.fold(name, fold_scores, len(test))
        maps += [(int(i), a.numpy()) for i, a in result["maps"]]
        pinned.append(result["cpu"])
        taken.append(result.get("resources", {}))
    # the kernels every fold ran: the parent's record, unless a worker's differed
    determinism = {**determinism, "cpu": next(
        (cpu for cpu in pinned if cpu != determinism["cpu"]), determinism["cpu"])}
    table_of_videos, table = table, scored
    tested = fold_of != ""
    predicted = probabilities.argmax(1)
    metrics = {
        **scores(table.labels[tested], predicted[tested], len(table.classes)),
        "clips": int(tested.sum()), "folds": len(folds), "classes": table.classes,
        "confusion": confusion(table.labels[tested], predicted[tested],
                               len(table.classes)).tolist(),
        "device": str(device),
        "skipped_clips": table.skipped,
        "protocol": config.protocol, "evaluation": protocols.evaluation_kind(config.protocol),
        "clip_list": config.clip_list, "augment": config.augment, "seed": config.seed,
    }
    if len(set(table.datasets[tested].tolist())) > 1:
        metrics["per_dataset"] = report.per_dataset(table.datasets[tested],
                                                    table.labels[tested], predicted[tested],
                                                    table.classes)
    (out / "config.json").write_text(json.dumps(
        {"config": asdict(config), "stores": [str(s) for s in stores],
         "evaluation": protocols.evaluation_kind(config.protocol),
         "clip_list": {"name": config.clip_list, "counts": clip_lists.counts(
             [(d, s, table.classes[k]) for d, s, k in zip(
                 table_of_videos.datasets, table_of_videos.subjects, table_of_videos.labels,
                 strict=True)])},
         "augment": {"mode": config.augment,
                     "copies_per_clip": EXPANSION if config.augment == "expand" else 1},
         "determinism": determinism,
         **({config.model: asdict(x.config)} if config.model != "meganet" else {})},
        indent=2) + "\n")
    (out / "report.md").write_text(report.markdown(metrics, f"{config.variant} on "
                                                   f"{', '.join(map(str, stores))}"))
    _write_outputs(out, table, fold_of, probabilities, epochs, fold_rows, metrics, maps)
    figures.write_run_figures(out, table, probabilities, metrics, maps, config)
    metrics["seconds"] = run_log.finish(metrics, {  # in run.timing.json, not metrics.json
        "folds_" + key: [t.get(key) for t in taken]
        for key in ("seconds", "peak_rss_mib", "cuda_peak_mib") if any(key in t for t in taken)})
    shutil.rmtree(out / PARTIAL, ignore_errors=True)
    (out / UNFINISHED).unlink()
    return metrics


def compare_modalities(stores: list[str], out: Path, config: TrainConfig,
                       modalities: list[str], progress: bool = True, cluster=None) -> str:
    """One run per input modality with the same network and protocol; a markdown table."""
    lines = ["| input | UF1 | UAR | ACC | WF1 |", "|---|---|---|---|---|"]
    for modality in modalities:
        m = run_training(stores, out / modality, replace(config, modality=modality), progress,
                         cluster=cluster)
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
    elif config.protocol == "lodo":
        folds = protocols.lodo(table.datasets)
    elif config.protocol == "holdout":
        folds = protocols.holdout(table.labels, config.holdout_fraction, config.seed,
                                  config.holdout_split)
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
    _csv(out / "predictions.csv", report.prediction_rows(
        table.datasets, table.clip_ids, table.subjects, table.classes, table.labels, fold_of,
        probabilities))


_csv = report.write_csv
