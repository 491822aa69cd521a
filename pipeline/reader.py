"""Reading mesti stores: numpy and zarr only (fsspec for URLs), no MediaPipe, Numba or Dask.

    from pipeline.reader import open_store
    store = open_store("cache/modalities/sample.zarr")
    store.index["label3"]                  # one entry per clip, in store order
    store.image("sub01_EP01_05f", "mesti")  # (224, 224, 3) uint8
    store.images("mesti")                  # (N, 224, 224, 3) uint8, in index order

The layout is documented in cache/README.md for readers without this code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

INDEX_FIELDS = ("clip_id", "dataset", "subject", "emotion", "label3", "label5", "n_frames")


class StoreError(ValueError):
    """A location that is not a usable mesti store."""


class Store:
    """A faces or modality store opened read-only."""

    def __init__(self, location: str | Path, *, require_complete: bool = True):
        self.location = str(location)
        try:
            self.root = zarr.open_group(self.location, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
            raise StoreError(f"{location}: no zarr store here") from error
        attrs = self.root.attrs.asdict()
        if "mesti_store" not in attrs:
            raise StoreError(f"{location}: a zarr group, but not a mesti store")
        if require_complete and not attrs.get("complete"):
            raise StoreError(f"{location}: store is incomplete (a run did not finish)")
        self.attrs = attrs
        self.kind: str = attrs["kind"]
        self.clip_ids: list[str] = list(attrs.get("clips", []))
        self._clip_attrs: dict[str, dict] = {}

    def clip_attrs(self, clip_id: str) -> dict:
        if clip_id not in self._clip_attrs:
            if clip_id not in self.clip_ids:
                raise KeyError(f"{self.location}: no clip {clip_id!r}")
            self._clip_attrs[clip_id] = self.root[f"clips/{clip_id}"].attrs.asdict()
        return self._clip_attrs[clip_id]

    @property
    def index(self) -> dict[str, np.ndarray]:
        """One column per field, one entry per clip (``pandas.DataFrame(store.index)``)."""
        rows = [self.clip_attrs(c) for c in self.clip_ids]
        return {f: np.array([r.get(f) for r in rows], dtype=object) for f in INDEX_FIELDS}

    def frames(self, clip_id: str) -> np.ndarray:
        """Aligned, equalised frames (T, S, S, 3) uint8 of a faces store."""
        return self._array(clip_id, "frames")[...]

    def landmarks(self, clip_id: str) -> np.ndarray:
        """Onset face-mesh landmarks (468, 2) in crop pixels of a faces store."""
        return self._array(clip_id, "landmarks")[...]

    @property
    def names(self) -> list[str]:
        """Image names of a modality store (mesti, dynamic_raw, apex_frame, ...)."""
        return list(self.attrs.get("images", []))

    def image(self, clip_id: str, name: str) -> np.ndarray:
        """One modality image (S, S, 3) uint8."""
        return self._array(clip_id, "images")[self._position(name)]

    def images(self, name: str, clip_ids: list[str] | None = None) -> np.ndarray:
        """One modality for many clips (N, S, S, 3) uint8, in ``clip_ids`` (index) order."""
        position = self._position(name)
        ids = self.clip_ids if clip_ids is None else clip_ids
        return np.stack([self._array(c, "images")[position] for c in ids])

    def float_image(self, clip_id: str, name: str) -> np.ndarray:
        """The float32 pooled image before its uint8 view (up to 8-bit quantisation)."""
        position = self._position(name)
        lo = self.clip_attrs(clip_id)["lo"][position]
        hi = self.clip_attrs(clip_id)["hi"][position]
        image = self.image(clip_id, name).astype(np.float32)
        if lo is None:  # stored as is (the apex frame)
            return image
        return np.float32(lo) + np.float32(hi - lo) * image / np.float32(255)

    def _position(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"{self.location}: no image {name!r}; has {self.names}")
        return self.names.index(name)

    def _array(self, clip_id: str, name: str) -> zarr.Array:
        if clip_id not in self.clip_ids:
            raise KeyError(f"{self.location}: no clip {clip_id!r}")
        return self.root[f"clips/{clip_id}/{name}"]


def open_store(location: str | Path, *, require_complete: bool = True) -> Store:
    """Open a store by path or URL (anything fsspec reads)."""
    return Store(location, require_complete=require_complete)
