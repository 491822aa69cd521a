"""Clips for training, read from modality stores through the store reader only."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from mesti.pipeline.stores.read import open_store

THREE_CLASSES = ("negative", "positive", "surprise")


@dataclass
class ClipTable:
    """One modality image per clip with its label, subject and dataset."""

    images: np.ndarray | None   # (N, S, S, C) uint8; None for sequence models
    labels: np.ndarray          # (N,) class indices
    classes: list[str]
    clip_ids: np.ndarray
    subjects: np.ndarray        # "dataset/subject": unique across a composite
    datasets: np.ndarray
    skipped: list[str] = field(default_factory=list)  # "store: clip: why" per skipped clip
    rows: np.ndarray | None = None  # positions in the table as loaded (None: all, in order)

    def subset(self, keep: np.ndarray, labels: np.ndarray | None = None,
               classes: list[str] | None = None) -> ClipTable:
        """The rows ``keep`` (a mask or indices), relabelled where ``labels`` is given."""
        rows = np.arange(len(self.labels)) if self.rows is None else self.rows
        return ClipTable(None if self.images is None else self.images[keep],
                         self.labels[keep] if labels is None else labels,
                         self.classes if classes is None else classes, self.clip_ids[keep],
                         self.subjects[keep], self.datasets[keep], self.skipped, rows[keep])


class BadClip(ValueError):
    """A listed clip whose group or image cannot be read (with ``on_bad_clip: stop``)."""


BAD_CLIP_POLICIES = ("skip", "stop")


def load_clips(stores: list[str], modality: str, label_set: int,
               on_bad_clip: str = "skip") -> ClipTable:
    """Clips of one or several stores that carry a label in the 3- or 5-class protocol.

    The 3 classes are fixed; the 5 classes are those present (CASME II's and SAMM's differ).
    ``modality`` is any image name in the stores (mesti, dynamic_raw, apex_frame, ...).
    A listed clip whose group or image cannot be read (deleted, corrupt chunk) is left out
    and named on stderr and in ``skipped`` (``on_bad_clip="skip"``), or stops the run with
    BadClip naming it (``"stop"``).
    """
    if label_set not in (3, 5):
        raise ValueError("label_set must be 3 or 5")
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, not {on_bad_clip!r}")
    field_name = f"label{label_set}"
    images, names, ids, subjects, datasets, skipped = [], [], [], [], [], []
    for location in stores:
        store = open_store(location)
        if modality not in store.names:
            raise ValueError(f"{location} has no image {modality!r}; it has {store.names}")
        for clip_id in store.clip_ids:
            try:
                attrs = store.clip_attrs(clip_id)
                if not attrs.get(field_name):
                    continue
                image = store.image(clip_id, modality)
            except Exception as error:  # group missing, metadata or chunk unreadable
                why = f"{location}: clip {clip_id}: unreadable, {type(error).__name__}: {error}"
                if on_bad_clip == "stop":
                    raise BadClip(f"{why} (train.on_bad_clip: stop)") from error
                print(f"skipped {why}", file=sys.stderr)
                skipped.append(why)
                continue
            images.append(image)
            names.append(attrs[field_name])
            ids.append(clip_id)
            subjects.append(f"{attrs.get('dataset')}/{attrs.get('subject')}")
            datasets.append(attrs.get("dataset"))
    if not ids:
        raise ValueError(f"no clip in {stores} has a {label_set}-class label")
    classes = list(THREE_CLASSES) if label_set == 3 else sorted(set(names))
    return ClipTable(np.stack(images), np.array([classes.index(n) for n in names]),
                     classes, np.array(ids), np.array(subjects), np.array(datasets), skipped)


def to_tensor(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, S, S, C) to float (N, C, size, size) in -1..1, resized by area averaging."""
    images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    x = images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.contiguous()


class ClipImages:
    """A table's images held as uint8 (N, S, S, C), seen as the float tensor (N, C, size,
    size) of :func:`to_tensor`, made per batch: a quarter of the memory at the store's size,
    and shared by every fold of a process.

    :meth:`expanded` appends ``augment: expand``'s copies of some rows without making them:
    row ``N + k * n + i`` is copy ``k`` (flip-major, as :func:`expand` orders them) of the
    ``i``-th of those ``n`` rows, rotated when the batch is made. Indexing returns the same
    floats as indexing ``torch.cat([to_tensor(images), expand(to_tensor(images)[rows])])``.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, size: int,
                 copies_of: np.ndarray | None = None):
        self.images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        self.size = size
        self.copies_of = np.zeros(0, np.int64) if copies_of is None else np.asarray(copies_of)

    def __len__(self) -> int:
        return len(self.images) + EXPANSION * len(self.copies_of)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), self.images.shape[3], self.size, self.size)

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()

    def expanded(self, rows: np.ndarray) -> ClipImages:
        """These images with the expanded copies of ``rows`` appended (they replace any)."""
        return ClipImages(self.images, self.size, rows)

    def to(self, device: torch.device) -> ClipImages:
        """The uint8 images on ``device`` (batches are then made there, with no copy from
        the host per step)."""
        return ClipImages(self.images.to(device), self.size, self.copies_of)

    def __getitem__(self, index) -> torch.Tensor:
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        if index.ndim == 0:
            return self[index[None]][0]
        n = len(self.images)
        index = np.where(index < 0, index + len(self), index)
        plain = index < n
        extra = index[~plain] - n
        rows = np.where(plain, index, 0)
        rows[~plain] = self.copies_of[extra % max(len(self.copies_of), 1)]
        where = self.images.device
        x = to_tensor(self.images[torch.from_numpy(rows).to(where)], self.size)
        if len(extra):
            copy = extra // max(len(self.copies_of), 1)
            flip = torch.from_numpy(copy >= len(ANGLES)).to(where)
            angle = torch.tensor(ANGLES, dtype=x.dtype)[torch.from_numpy(copy % len(ANGLES))]
            copies = x[torch.from_numpy(~plain).to(where)]
            copies = torch.where(flip[:, None, None, None], copies.flip(-1), copies)
            x[torch.from_numpy(~plain).to(where)] = rotate(copies, angle.to(where))
        return x


ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)
EXPANSION = 2 * len(ANGLES)  # ``expand``: every flip (none, horizontal) times every angle


def augment(x: torch.Tensor, generator: torch.Generator,
            angles: tuple[float, ...] = ANGLES) -> torch.Tensor:
    """Random horizontal flip and a rotation drawn from ``angles`` (degrees), per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    choice = torch.randint(len(angles), (n,), generator=generator)
    return rotate(x, torch.tensor(angles, dtype=x.dtype)[choice])


def expand(x: torch.Tensor, angles: tuple[float, ...] = ANGLES) -> torch.Tensor:
    """The offline expanded set: each image unflipped and flipped, each rotated by every
    angle (0, +-5, +-10 degrees): ``2 * len(angles)`` copies, copy-major (image i of copy k
    at ``k * N + i``)."""
    copies = []
    for image in (x, x.flip(-1)):
        for angle in angles:
            copies.append(rotate(image, torch.full((len(x),), angle, dtype=x.dtype)))
    return torch.cat(copies)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Each image rotated about its centre by its angle, borders repeated."""
    theta = torch.deg2rad(degrees)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


LABEL_MAPPINGS = ("none", "union", "shared")


def cross_dataset_labels(table: ClipTable, label_set: int, mapping: str) -> ClipTable:
    """The table with one label vocabulary across datasets, or a refusal.

    Three classes are common to every dataset. Five classes are not: CASME II has disgust,
    happiness, others, repression, surprise; SAMM anger, contempt, happiness, other, surprise.
    Pooling them as they stand would silently make an 8-class problem, so more than one
    dataset needs a mapping named: ``union`` (others and other merged, every emotion kept:
    7 classes) or ``shared`` (others and other merged, only the emotions every dataset has).
    """
    if mapping not in LABEL_MAPPINGS:
        raise ValueError(f"label_mapping must be one of {LABEL_MAPPINGS}, got {mapping!r}")
    datasets = sorted(set(table.datasets.tolist()))
    if label_set == 3 or len(datasets) == 1:
        return table
    names = np.array([table.classes[i] for i in table.labels], dtype=object)
    if mapping == "none":
        sets = {d: sorted(set(names[table.datasets == d])) for d in datasets}
        raise ValueError(
            f"5 classes across datasets {datasets} would pool different emotion sets {sets} "
            f"into {len(table.classes)} classes; name a cross-dataset mapping "
            f"(train.label_mapping: union | shared) or use labels: 3")
    names = np.where(names == "others", "other", names)
    keep = np.ones(len(names), bool)
    if mapping == "shared":
        common = set.intersection(*(set(names[table.datasets == d]) for d in datasets))
        keep = np.array([n in common for n in names])
    classes = sorted(set(names[keep]))
    return table.subset(keep, np.array([classes.index(n) for n in names[keep]]), classes)
