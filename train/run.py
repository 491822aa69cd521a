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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mesti.params import one_of

from . import clip_lists, figures, protocols, report
from .compare import UNFINISHED
from .data import (
    EXPANSION,
    LABEL_MAPPINGS,
    ClipTable,
    cross_dataset_labels,
    expand,
    load_clips,
    to_tensor,
)
from .determinism import deterministic
from .inputs import (
    MODELS,
    FDPConfig,
    ImageInputs,
    Inputs,
    MOLConfig,
    as_inputs,
    load_inputs,
    scored_rows,
)
from .loop import predict, train_fold
from .metrics import confusion, scores
from .models.meganet import SWITCHES, VARIANTS, GradientAttention
from .predict import save_fold
from .tracking import RunLog


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the train stage (params.yaml section ``train``)."""

    protocol: str = "loso"            # loso | lodo | holdout (subject-dependent) | cross
    model: str = "meganet"            # meganet | fdp | mol (their knobs: sections fdp, mol)
    labels: int = 3                   # 3 or 5 classes
    modality: str = "mesti"           # any image of the store: mesti, dynamic_raw, apex_frame...
    variant: str = "meganet"          # a name of train.model.VARIANTS (the ablations)
    switches: dict = field(default_factory=dict)  # MEGANet switches set on top of the variant
    input_size: int = 112             # measured knee of CPU step time; see README
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    gamma: float = 2.0                # focal loss
    seed: int = 0
    seeds: tuple[int, ...] = ()       # several seeds in one run (mean and std); empty: seed
    clip_list: str = "none"           # none | megc2019 | casme2_3class_all (train/lists/)
    label_mapping: str = "none"       # 5 classes across datasets: none (refused) | union | shared
    augment: str = "online"           # online (a random draw per batch) | expand (offline, x10)
    deterministic: bool = True        # cuDNN and PyTorch deterministic kernels on CUDA
    save_weights: bool = True         # weights/fold_NNN.pt per fold, for mesti predict
    selection: str = "last"           # last | validation (carved from training subjects)
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.1
    train_on: str = ""                # cross: training dataset
    test_on: str = ""                 # cross: test dataset
    device: str = "auto"              # auto (CUDA when present) | cpu | cuda
    channels_last: bool = True
    figure_clips: int = 4
    on_bad_clip: str = "skip"         # a listed clip that cannot be read: skip (and name) | stop
    holdout_split: str = "published"  # published (plain seeded 10 %) | stratified (per class)
    threads: int = 1                  # intra-op CPU threads, set explicitly; 0: torch's own

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "switches", dict(self.switches))
        checks = {
            one_of("protocol", protocols.SUBJECT_INDEPENDENT):
                self.protocol in protocols.SUBJECT_INDEPENDENT,
            one_of("model", MODELS): self.model in MODELS,
            one_of("labels", (3, 5)): self.labels in (3, 5),
            one_of("variant", VARIANTS): self.variant in VARIANTS,
            f"switches' names among {{{', '.join(SWITCHES)}}}":
                set(self.switches) <= set(SWITCHES),
            "seeds distinct integers":
                all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
                and len(set(self.seeds)) == len(self.seeds),
            one_of("clip_list", clip_lists.NAMES): self.clip_list in clip_lists.NAMES,
            one_of("label_mapping", LABEL_MAPPINGS): self.label_mapping in LABEL_MAPPINGS,
            one_of("augment", ("online", "expand")): self.augment in ("online", "expand"),
            one_of("selection", ("last", "validation")):
                self.selection in ("last", "validation"),
            one_of("device", ("auto", "cpu", "cuda")): self.device in ("auto", "cpu", "cuda"),
            one_of("on_bad_clip", ("skip", "stop")): self.on_bad_clip in ("skip", "stop"),
            one_of("holdout_split", protocols.HOLDOUT_SPLITS):
                self.holdout_split in protocols.HOLDOUT_SPLITS,
            "threads >= 0 (>= 1 when deterministic)": self.threads >= int(self.deterministic),
            "input_size >= 16": self.input_size >= 16,
            "epochs >= 1": self.epochs >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "lr > 0": self.lr > 0,
            "weight_decay >= 0": self.weight_decay >= 0,
            "gamma >= 0": self.gamma >= 0,
            "0 < validation_fraction < 1": 0 < self.validation_fraction < 1,
            "0 < holdout_fraction < 1": 0 < self.holdout_fraction < 1,
            "figure_clips >= 0": self.figure_clips >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid train settings: {', '.join(bad)} must hold")


def run_training(stores: list[str], out: Path, config: TrainConfig, progress: bool = True,
                 model_config: FDPConfig | MOLConfig | None = None) -> dict:
    """Train and evaluate under ``config.protocol``, once per seed; write the run folder;
    return metrics (over several seeds: their means, with ``std`` and ``per_seed``).

    MEGANet reads modality stores; FDP and MOL read sequences stores, with ``model_config``
    (sections ``fdp`` / ``mol``; their defaults when None).
    """
    if len(config.seeds) <= 1:
        seed = config.seeds[0] if config.seeds else config.seed
        return _train_once(stores, out, replace(config, seed=seed), progress, model_config)
    out.mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text("mesti train is writing this run; removed when it ends\n")
    runs = [_train_once(stores, out / f"seed_{s}", replace(config, seed=s, seeds=()),
                        progress, model_config) for s in config.seeds]
    metrics = report.aggregate_seeds(runs, list(config.seeds))
    (out / "config.json").write_text(json.dumps(
        {"config": asdict(config), "stores": [str(s) for s in stores],
         "seed_runs": [f"seed_{s}" for s in config.seeds]}, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(report.markdown(metrics, f"{config.variant} on "
                                                   f"{', '.join(map(str, stores))}"))
    (out / UNFINISHED).unlink()
    return metrics


def prepare_table(stores: list[str], config: TrainConfig) -> ClipTable:
    """The clips a run evaluates on: the stores' labelled clips, one label vocabulary
    across datasets, restricted to the named clip list (exactly, or an error)."""
    return select_clips(load_clips(stores, config.modality, config.labels, config.on_bad_clip),
                        config, stores)


def select_clips(table: ClipTable, config: TrainConfig, stores: list[str]) -> ClipTable:
    """A loaded table with one label vocabulary across datasets, restricted to the named
    clip list (exactly, or an error)."""
    table = cross_dataset_labels(table, config.labels, config.label_mapping)
    if config.clip_list == "none":
        return table
    if config.labels != 3:
        raise ValueError(f"clip list {config.clip_list} is a 3-class protocol; labels is "
                         f"{config.labels}")
    keep = clip_lists.select(
        config.clip_list, table.datasets, np.array([s.split("/", 1)[1] for s in table.subjects]),
        table.clip_ids, [table.classes[i] for i in table.labels], stores)
    return table.subset(keep)


def _train_once(stores: list[str], out: Path, config: TrainConfig, progress: bool,
                model_config: FDPConfig | MOLConfig | None) -> dict:
    """One seed's run folder."""
    with deterministic(config.deterministic, config.threads) as determinism:
        return _train_seed(stores, out, config, progress, determinism, model_config)


def _train_seed(stores: list[str], out: Path, config: TrainConfig, progress: bool,
                determinism: dict, model_config: FDPConfig | MOLConfig | None) -> dict:
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    if config.model == "meganet":
        table = prepare_table(stores, config)
        x = to_tensor(table.images, config.input_size)
    else:
        table, x = load_inputs(stores, config.model, config.labels, config=model_config,
                               select=lambda loaded: select_clips(loaded, config, stores),
                               on_bad_clip=config.on_bad_clip)
    folds = _folds(table, config)
    y = torch.from_numpy(table.labels)
    out.mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text("mesti train is writing this run; removed when it ends\n")
    run_log = RunLog(out, config, len(folds), progress)
    scored, rows_of = scored_rows(table, None if config.model == "meganet" else x)
    probabilities = np.zeros((len(scored.labels), len(table.classes)))
    fold_of = np.full(len(scored.labels), "", dtype=object)
    epochs, fold_rows, maps, weights = [], [], [], []
    for number, fold in enumerate(folds):
        name = fold.name

        def log(row: dict, name: str = name) -> None:
            epochs.append({"fold": name, **row})
            run_log.epoch(name, row)

        model, p = fit_fold(config, x, y, fold, number, len(table.classes), device, log)
        if config.save_weights:
            save_fold(out, number, name, model, [(table.datasets[i], table.clip_ids[i])
                                                 for i in fold.test], weights)
        test = rows_of(fold.test)
        probabilities[test] = p
        fold_of[test] = name
        fold_scores = scores(scored.labels[test], p.argmax(1), len(table.classes))
        fold_rows.append({"fold": name, "train": len(fold.train), "validation":
                          len(fold.validation), "test": len(test), **fold_scores})
        run_log.fold(name, fold_scores, len(test))
        if len(maps) < config.figure_clips and isinstance(
                getattr(model, "input_attention", None), GradientAttention) and \
                model.attention_position == "input":
            maps += figures.attention_maps(model, x, fold.test, device,
                                           config.figure_clips - len(maps))
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
    metrics["seconds"] = run_log.finish(metrics)  # in run.timing.json, not metrics.json
    (out / UNFINISHED).unlink()
    return metrics


def fit_fold(config: TrainConfig, x: torch.Tensor | Inputs, y: torch.Tensor, fold: protocols.Fold,
             number: int, n_classes: int, device: torch.device,
             log: Callable[[dict], None]) -> tuple[torch.nn.Module, np.ndarray]:
    """Train fold ``number`` from seeded initial weights; its test clips' probabilities.

    ``x``: MEGANet's images or a model's inputs adapter (train/inputs.py).
    """
    torch.manual_seed(config.seed + number)  # the initial weights too, not only the batches
    train = fold.train
    if config.model == "meganet":
        if config.augment == "expand":  # the expanded copies of the training clips, appended
            x = torch.cat([x, expand(x[fold.train])])
            y = torch.cat([y, y[fold.train].repeat(EXPANSION)])
            train = np.arange(len(y) - EXPANSION * len(fold.train), len(y))
        x = ImageInputs(x, y, config.switches, augment=config.augment == "online")
    inputs = as_inputs(x, y)
    settings = inputs.settings(config)
    model = train_fold(inputs.build(config.variant, n_classes), inputs, y, train,
                       fold.validation, seed=config.seed + number, device=device, log=log,
                       **settings)
    clip_scoring = getattr(getattr(inputs, "config", None), "scoring", "video") == "clip"
    return model, predict(model, inputs[fold.test], device, settings["batch_size"],
                          settings["channels_last"], pool=not clip_scoring)


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
