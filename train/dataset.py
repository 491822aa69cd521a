"""A PyTorch Dataset over one modality store, safe in DataLoader worker processes.

    from torch.utils.data import DataLoader
    import mesti
    data = mesti.MestiDataset("sample.zip", image="mesti", labels="label3")
    for images, labels in DataLoader(data, batch_size=8, num_workers=2):
        ...

The dataset holds the store's location, not an open store: each process opens its own on
first use (a forked worker never reads through its parent's zip handle or HTTP session; a
shared zip file offset is what made forked workers fail with ``BadZipFile: Bad CRC-32``),
and a pickled dataset (spawn workers) carries the location alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mesti.pipeline.stores.read import Store, open_store

from . import protocols
from .data import THREE_CLASSES, to_tensor

LABEL_FIELDS = ("label3", "label5", "emotion")


def full_classes(datasets: list[str], labels: str) -> list[str] | None:
    """The protocol's class list for the label field ``labels`` over ``datasets``: label3's
    three classes; label5's five, or every emotion, of the datasets' recipes (sorted); None
    where a recipe has no such list or the datasets' lists differ (a composite's 5 classes
    need a label mapping: the trainer's ``label_mapping``)."""
    if labels == "label3":
        return list(THREE_CLASSES)
    from mesti.datasets_manifest import RECIPES

    lists = set()
    for dataset in datasets:
        recipe = RECIPES.get(dataset)
        mapping = None if recipe is None else (
            set(recipe.LABELS.five.values()) if labels == "label5" else set(recipe.LABELS.known))
        if not mapping:
            return None
        lists.add(tuple(sorted(mapping)))
    return list(lists.pop()) if len(lists) == 1 else None


class MestiDataset(torch.utils.data.Dataset):
    """The clips of a modality store that carry a ``labels`` label: (image, class index).

    ``store`` is a directory, a zip file or a URL (or an open store, whose location is used).
    ``image`` is one of the store's image names (``mesti``, ``dynamic_raw``, ...).
    ``labels`` is the label field: ``label3`` (negative, positive, surprise), ``label5`` or
    ``emotion``. ``classes`` fixes the class list (its order gives the indices); by default
    it is the protocol's full list, the same for every store of a dataset whichever labels
    its clips happen to carry: label3's three classes, label5's five and every emotion of
    the store's dataset as its recipe maps them (:func:`full_classes`); the classes present
    only where the recipe has no such list. ``protocol`` (``loso``, ``lodo``, ``holdout`` or
    ``cross:<train dataset>-><test dataset>``) gives ``folds`` as the trainer splits them.
    Without ``transform`` an item's image is a float tensor (3, S, S) in -1..1, as the
    trainer feeds the network; with it, ``transform`` gets the uint8 (S, S, 3) array.

    ``classes``, ``clip_ids``, ``subjects`` and ``targets`` describe the items in order;
    ``groups`` (``"dataset/subject"``, unique across datasets) is what scikit-learn's group
    splitters (``LeaveOneGroupOut``) take; ``index`` is the store's index of those clips.
    """

    def __init__(self, store: str | Path | Store, image: str = "mesti", labels: str = "label3",
                 protocol: str | None = None,
                 transform: Callable[[np.ndarray], Any] | None = None,
                 classes: list[str] | None = None):
        if labels not in LABEL_FIELDS:
            raise ValueError(f"labels must be one of {LABEL_FIELDS}, not {labels!r}")
        self.location = store.location if isinstance(store, Store) else str(store)
        self.image = image
        self.labels = labels
        self.protocol = protocol
        self.transform = transform
        with open_store(self.location) as opened:
            if opened.kind != "modalities":
                raise ValueError(f"{self.location}: a {opened.kind} store; MestiDataset reads "
                                 "a modality store")
            if image not in opened.names:
                raise KeyError(f"{self.location}: no image {image!r}; it has {opened.names}")
            index = opened.index
        index = index[index[labels].notna() & (index[labels] != "")].reset_index(drop=True)
        if index.empty:
            raise ValueError(f"{self.location}: no clip has a {labels!r} label")
        self.index = index
        names = list(index[labels])
        self.classes: list[str] = (list(classes) if classes is not None else
                                   full_classes(sorted(set(index["dataset"].astype(str))),
                                                labels) or sorted(set(names)))
        unknown = sorted(set(names) - set(self.classes))
        if unknown:
            raise ValueError(f"{self.location}: {labels} values {unknown} are not among "
                             f"{self.classes}")
        self.clip_ids: list[str] = list(index["clip_id"])
        self.targets = np.array([self.classes.index(n) for n in names], np.int64)
        self.subjects = np.array(index["subject"].astype(str))
        self.groups = np.array([f"{d}/{s}" for d, s in zip(index["dataset"], index["subject"],
                                                             strict=True)])
        self.datasets = np.array(index["dataset"].astype(str))
        self.folds = self._folds(protocol) if protocol else None
        self._store: Store | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, item: int) -> tuple[Any, int]:
        image = self.store.image(self.clip_ids[item], self.image)
        target = int(self.targets[item])
        if self.transform is not None:
            return self.transform(image), target
        return to_tensor(image[None], image.shape[0])[0], target

    @property
    def store(self) -> Store:
        """This process's own open store (opened on first use in each process)."""
        if self._store is None or self._pid != os.getpid():
            # a store inherited through fork is left alone: closing it would close the
            # parent's file; it is dropped with this process
            self._store = open_store(self.location)
            self._pid = os.getpid()
        return self._store

    def close(self) -> None:
        """Release this process's store (a later item opens it again)."""
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._store = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None, "_pid": None}

    def _folds(self, protocol: str) -> list[protocols.Fold]:
        """The folds the trainer uses for ``protocol`` with its default settings."""
        if protocol == "loso":
            return protocols.loso(self.groups)
        if protocol == "lodo":
            return protocols.lodo(self.datasets)
        if protocol == "holdout":
            from .config import TrainConfig  # the trainer's default fraction and seed

            defaults = TrainConfig()
            return protocols.holdout(self.targets, defaults.holdout_fraction, defaults.seed)
        if protocol.startswith("cross:") and "->" in protocol:
            train_on, test_on = protocol.removeprefix("cross:").split("->", 1)
            return protocols.cross(self.datasets, train_on, test_on)
        raise ValueError(f"protocol must be loso, lodo, holdout or cross:<train>-><test>, "
                         f"not {protocol!r}")
