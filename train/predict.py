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
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .data import to_tensor
from .loop import predict
from .models.meganet import build
from .report import prediction_rows, write_csv
from .table import prepare_table

WEIGHTS = "weights"
INDEX = "folds.json"


def save_fold(out: Path, number: int, name: str, model: nn.Module | dict[str, torch.Tensor],
              test: list[tuple[str, str]], index: list[dict]) -> None:
    """Write fold ``number``'s weights (a model or its state_dict) and add it to the folds
    index (rewritten each time, so a run stopped half-way still lists the folds it saved)."""
    folder = out / WEIGHTS
    folder.mkdir(parents=True, exist_ok=True)
    file = f"fold_{number:03d}.pt"
    # contiguous: the same bytes whether the tensors come from a channels-last model in this
    # process or from a worker (Dask sends tensors contiguous)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in (
        model if isinstance(model, dict) else model.state_dict()).items()}
    torch.save(state, folder / file)
    index.append({"fold": name, "file": file, "test": [list(t) for t in test]})
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")


class WeightsError(ValueError):
    """A fold's weights file that this run's model cannot use (named, with the reason)."""


def load_fold(model: nn.Module, path: Path, variant: str, classes: list[str]) -> None:
    """Load the state_dict at ``path`` into ``model`` (a MEGANet ``variant`` with one output
    per class of ``classes``); a file that is not a readable state_dict, holds another
    network's weights or a head of another size fails as a :class:`WeightsError` naming
    the file, instead of torch's multi-line error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise WeightsError(f"{path}: missing (listed in {INDEX})") from error
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else \
            type(error).__name__
        raise WeightsError(f"{path}: not a readable weights file (truncated or damaged?): "
                           f"{reason}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in state.values()):
        raise WeightsError(f"{path}: not a state_dict of tensors ({type(state).__name__})")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise WeightsError(
            f"{path}: not the weights of this run's network (MEGANet {variant!r}): "
            f"{len(missing)} of its {len(expected)} tensors missing"
            f"{' (' + ', '.join(missing[:3]) + ', ...)' if missing else ''}, "
            f"{len(unexpected)} unknown ones"
            f"{' (' + ', '.join(unexpected[:3]) + ', ...)' if unexpected else ''}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) == tuple(tensor.shape):
            continue
        if key.startswith("head.") and state[key].shape[:1] != tensor.shape[:1]:
            raise WeightsError(
                f"{path}: a head of {state[key].shape[0]} classes ({key}); this run has "
                f"{len(classes)}: {', '.join(classes)}")
        raise WeightsError(f"{path}: {key} has shape {tuple(state[key].shape)}, this run's "
                           f"network (MEGANet {variant!r}) needs {tuple(tensor.shape)}")
    model.load_state_dict(state)


def _fold_index(path: Path) -> list[dict]:
    """The folds index, each entry with its fold name, a plain weights file name in the same
    folder and its test clips; anything else is a WeightsError naming the index."""
    try:
        folds = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: not a folds index (not JSON: {error})") from error
    if not isinstance(folds, list) or not folds:
        raise WeightsError(f"{path}: not a folds index (a non-empty list of folds)")
    for number, fold in enumerate(folds):
        file = fold.get("file") if isinstance(fold, dict) else None
        test = fold.get("test") if isinstance(fold, dict) else None
        if not isinstance(file, str) or Path(file).name != file or file in ("", ".", "..") \
                or not isinstance(test, list) or not all(
                    isinstance(t, list) and len(t) == 2 for t in test):
            raise WeightsError(f"{path}: entry {number} is not a fold (fold, a weights file "
                               "name in this folder, test clips as [dataset, clip id])")
    return folds


def predict_run(stores: list[str], run_dir: Path, out_csv: Path) -> int:
    """Recompute a run's test predictions on CPU from its weights into ``out_csv``; the
    number of clips predicted."""
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
    folds = _fold_index(index_file)
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
        load_fold(model, run_dir / WEIGHTS / fold["file"], config.variant, table.classes)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        probabilities[test] = predict(model, x[test], device, config.batch_size,
                                      config.channels_last)
        fold_of[test] = fold["fold"]
    rows = prediction_rows(table.datasets, table.clip_ids, table.subjects, table.classes,
                           table.labels, fold_of, probabilities)
    write_csv(out_csv, rows)
    return len(rows)
