"""Folds as tasks: one fold's training from its data to its test probabilities, run in this
process or as a Dask task, its result kept in the run folder as it arrives.

A fold task is a plain dict (stores, settings, the fold's indices) that a worker turns into a
trained fold by itself: it reads the stores (path, zip or URL), trains with the run's intra-op
thread count and returns the fold's epochs, test probabilities, weights and attention maps.
The parent gathers the results in fold order and writes every output itself, so a run on any
number of workers writes the same bytes as a run in one process.

Each result is also written, as it arrives, to ``<run>/folds.partial/<key>/fold_NNN.pt``: the
key is a sha256 of the canonical JSON of the run's settings and its stores' content keys (like
a store clip's key), so a run stopped part-way (its parent killed) reuses the folds it
finished when it is started again with the same settings on the same stores, and recomputes
nothing else; the folder is removed when the run ends. A worker that dies mid-fold has only
that fold re-run, by Dask (``distributed.scheduler.allowed-failures``).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import figures, protocols
from .config import TrainConfig
from .data import EXPANSION, ClipImages, ClipTable, expand, open_store
from .determinism import deterministic
from .inputs import MODEL_CONFIGS, ImageInputs, Inputs, as_inputs, load_inputs
from .loop import predict, train_fold
from .models.meganet import GradientAttention
from .table import prepare_table, select_clips

PARTIAL = "folds.partial"
# What a Dask worker runs per fold task (None: train.cluster.run_fold_task); a seam for the
# fault-injection tests, which kill a fold's worker.
FOLD_TASK: Callable[[dict], dict] | None = None


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
            x = x.expanded(fold.train) if isinstance(x, ClipImages) else \
                torch.cat([x, expand(x[fold.train])])
            y = torch.cat([y, y[fold.train].repeat(EXPANSION)])
            train = np.arange(len(y) - EXPANSION * len(fold.train), len(y))
        if isinstance(x, ClipImages):
            x = on_device(x, device)
        x = ImageInputs(x, y, config.switches, augment=config.augment == "online")
    inputs = as_inputs(x, y)
    settings = inputs.settings(config)
    model = train_fold(inputs.build(config.variant, n_classes), inputs, y, train,
                       fold.validation, seed=config.seed + number, device=device, log=log,
                       **settings)
    clip_scoring = getattr(getattr(inputs, "config", None), "scoring", "video") == "clip"
    return model, predict(model, inputs[fold.test], device, settings["batch_size"],
                          settings["channels_last"], pool=not clip_scoring)


def load_data(stores: list[str], config: TrainConfig,
              model_config=None) -> tuple[ClipTable, torch.Tensor | Inputs]:
    """The run's clip table and the model's inputs (MEGANet: the images as floats)."""
    if config.model == "meganet":
        table = prepare_table(stores, config)
        return table, ClipImages(table.images, config.input_size)
    return load_inputs(stores, config.model, config.labels, config=model_config,
                       select=lambda loaded: select_clips(loaded, config, stores),
                       on_bad_clip=config.on_bad_clip)


def on_device(x: ClipImages, device: torch.device, share: float = 0.25) -> ClipImages:
    """The uint8 images on a CUDA ``device`` when they take at most ``share`` of its free
    memory (several folds share a device), so batches are made there with no host-to-device
    copy per step; else as they are."""
    if device.type != "cuda":
        return x
    free, _ = torch.cuda.mem_get_info(device)
    return x.to(device) if fits(x.nbytes, free, share) else x


def fits(nbytes: int, free: int, share: float) -> bool:
    """Whether ``nbytes`` take at most ``share`` of ``free`` bytes."""
    return nbytes <= share * free


def fold_device(device: str, number: int, cuda_devices: int) -> str:
    """The device fold ``number`` trains on: CUDA folds are spread round-robin over the
    visible devices (several folds share one when there are more folds running than
    devices); anything else as given."""
    if device != "cuda" or cuda_devices <= 1:
        return device
    return f"cuda:{number % cuda_devices}"


def run_key(stores: list[str], config: TrainConfig, model_config=None) -> str:
    """sha256 of the canonical JSON of the settings and every store's clips' content keys:
    what decides a fold's result."""
    content = []
    for location in stores:
        store = open_store(location)
        content.append([str(location), [[c, _content_key(store, c)] for c in store.clip_ids]])
    payload = {"config": asdict(config), "stores": content, "torch": torch.__version__,
               "model_config": asdict(model_config) if model_config is not None else None}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _content_key(store, clip_id: str) -> str | None:
    """A listed clip's content key; None for one whose attributes cannot be read (the loader
    skips and names such a clip, so it decides nothing)."""
    try:
        return store.clip_attrs(clip_id).get("content_key")
    except (KeyError, ValueError, OSError):
        return None


def results_folder(out: Path, key: str) -> Path:
    """Where this run's finished folds are kept; other keys' leftovers are removed."""
    partial = out / PARTIAL
    if partial.is_dir():
        for other in partial.iterdir():
            if other.name != key:
                shutil.rmtree(other, ignore_errors=True)
    folder = partial / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def maps_wanted(folds: list[protocols.Fold], figure_clips: int) -> list[int]:
    """Attention maps each fold draws: the first test clips of the first folds, up to
    ``figure_clips`` in all."""
    wanted, left = [], figure_clips
    for fold in folds:
        wanted.append(min(left, len(fold.test)))
        left -= wanted[-1]
    return wanted


def make_task(stores: list[str], config: TrainConfig, model_config, number: int,
              fold: protocols.Fold, n_classes: int, device: str, results: Path,
              maps: int) -> dict:
    """A fold task of plain values (no torch object), so a worker unpickles it before
    torch starts and pins the CPU kernels first."""
    return {"stores": [str(s) for s in stores], "config": asdict(config),
            "model_config": asdict(model_config) if model_config is not None else None,
            "number": number, "name": fold.name, "train": fold.train, "test": fold.test,
            "validation": fold.validation, "n_classes": n_classes, "device": device,
            "result": str(results / f"fold_{number:03d}.pt"), "maps": maps}


_DATA: dict[str, tuple] = {}  # one run's data per worker process, shared by its folds


def fold_result(task: dict, data: tuple | None = None,
                log: Callable[[dict], None] | None = None) -> dict:
    """Train one fold task and write its result file; ``data`` (table, inputs) when the
    caller holds them, else read from the stores (once per process and run)."""
    config = TrainConfig(**task["config"])
    model_config = (MODEL_CONFIGS[config.model](**task["model_config"])
                    if task["model_config"] is not None else None)
    with deterministic(config.deterministic, config.threads) as record:
        if data is None:
            wanted = json.dumps([task["stores"], task["config"], task["model_config"]],
                                sort_keys=True)
            if wanted not in _DATA:
                _DATA.clear()
                _DATA[wanted] = load_data(task["stores"], config, model_config)
            data = _DATA[wanted]
        table, x = data
        fold = protocols.Fold(task["name"], np.asarray(task["train"]), np.asarray(task["test"]),
                              np.asarray(task["validation"]))
        device = torch.device(fold_device(task["device"], task["number"],
                                          torch.cuda.device_count()
                                          if task["device"] == "cuda" else 0))
        epochs: list[dict] = []

        def logged(row: dict) -> None:
            epochs.append(row)
            if log is not None:
                log(row)

        started = time.perf_counter()
        model, p = fit_fold(config, x, torch.from_numpy(table.labels), fold, task["number"],
                            task["n_classes"], device, logged)
        seconds = time.perf_counter() - started
        maps = []
        if task["maps"] and isinstance(getattr(model, "input_attention", None),
                                       GradientAttention) and \
                model.attention_position == "input":
            maps = [[i, torch.from_numpy(np.ascontiguousarray(a))] for i, a in
                    figures.attention_maps(model, x, fold.test, device, task["maps"])]
    result = {"number": task["number"], "epochs": epochs, "resources": {
                  **_resources(device), "seconds": round(seconds, 2)},
              "probabilities": torch.from_numpy(np.asarray(p, dtype=np.float64)),
              "state": ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                        if config.save_weights else None),
              "maps": maps, "cpu": record["cpu"]}
    path = Path(task["result"])
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(result, temporary)
    os.replace(temporary, path)  # whole or absent, for the run that resumes
    return result


def _resources(device: torch.device) -> dict:
    """What this fold's process has taken at most so far: resident memory (MiB; the
    process's peak, over the folds it ran) and, on CUDA, the device memory this fold
    allocated at most."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    taken = {"peak_rss_mib": round(peak, 1)}
    if device.type == "cuda":
        taken["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        torch.cuda.reset_peak_memory_stats(device)
    return taken


def finished(task: dict) -> dict | None:
    """A fold's kept result, or None when it has none (or an unreadable one)."""
    path = Path(task["result"])
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: the fold is recomputed
        return None
