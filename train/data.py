"""Clips for training, read from modality stores through the store reader only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from mesti.pipeline.reader import open_store

THREE_CLASSES = ("negative", "positive", "surprise")


@dataclass
class ClipTable:
    """One modality image per clip with its label, subject and dataset."""

    images: np.ndarray          # (N, S, S, C) uint8
    labels: np.ndarray          # (N,) class indices
    classes: list[str]
    clip_ids: np.ndarray
    subjects: np.ndarray        # "dataset/subject": unique across a composite
    datasets: np.ndarray


def load_clips(stores: list[str], modality: str, label_set: int) -> ClipTable:
    """Clips of one or several stores that carry a label in the 3- or 5-class protocol.

    The 3 classes are fixed; the 5 classes are those present (CASME II's and SAMM's differ).
    ``modality`` is any image name in the stores (mesti, dynamic_raw, apex_frame, ...).
    """
    if label_set not in (3, 5):
        raise ValueError("label_set must be 3 or 5")
    field = f"label{label_set}"
    images, names, ids, subjects, datasets = [], [], [], [], []
    for location in stores:
        store = open_store(location)
        if modality not in store.names:
            raise ValueError(f"{location} has no image {modality!r}; it has {store.names}")
        index = store.index
        index = index[[bool(label) for label in index[field]]]
        chosen = list(index["clip_id"])
        if chosen:
            images.append(store.images(modality, chosen))
        names += list(index[field])
        ids += chosen
        subjects += [f"{d}/{s}" for d, s in zip(index["dataset"], index["subject"], strict=True)]
        datasets += list(index["dataset"])
    if not ids:
        raise ValueError(f"no clip in {stores} has a {label_set}-class label")
    classes = list(THREE_CLASSES) if label_set == 3 else sorted(set(names))
    return ClipTable(np.concatenate(images), np.array([classes.index(n) for n in names]),
                     classes, np.array(ids), np.array(subjects), np.array(datasets))


def to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, S, S, C) to float (N, C, size, size) in -1..1, resized by area averaging."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.contiguous()


def augment(x: torch.Tensor, generator: torch.Generator,
            angles: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)) -> torch.Tensor:
    """Random horizontal flip and a rotation drawn from ``angles`` (degrees), per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    choice = torch.randint(len(angles), (n,), generator=generator)
    theta = torch.deg2rad(torch.tensor(angles, dtype=x.dtype)[choice])
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
