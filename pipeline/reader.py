"""Reading mesti stores: numpy and zarr only (fsspec for URLs), no MediaPipe, Numba or Dask.

    from mesti.pipeline.reader import open_store
    store = open_store("cache/modalities/sample.zarr")
    store.index                            # a pandas DataFrame, one row per clip in store order
    store.image("sub01_EP01_05f", "mesti")  # (224, 224, 3) uint8
    store.images("mesti")                  # (N, 224, 224, 3) uint8, in index order

A store is opened from a directory, a zip file (``mesti cache export``) or a URL read through
fsspec: ``https://host/sample.zarr``, ``https://host/sample.zip`` (read inside the zip over
HTTP range requests), ``s3://`` or ``gs://`` with the ``cloud`` extra installed. Everything
is read-only.

A store is untrusted input: clip ids from its attributes become paths, so each must be one
safe path component; the layout version must be the one this reader knows; arrays must be
numeric and use only the codecs the layout specifies, so nothing is ever unpickled or handed
to a decoder the format does not name. The layout is documented in cache/README.md for
readers without this code.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, ZipStore

LAYOUT_VERSION = 1
KINDS = ("faces", "modalities")
# The manifest fields every clip of either kind carries (the manifest's ``root``, a path on the
# machine that built the store, is left out), and the index's columns: those plus n_frames.
MANIFEST_FIELDS = ("dataset", "subject", "clip_id", "source", "kind", "frames", "frame_numbers",
                   "onset", "apex", "offset", "emotion", "label3", "label5", "action_units",
                   "fps")
INDEX_FIELDS = (*MANIFEST_FIELDS, "n_frames")
SAFE_CLIP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CODECS = frozenset({"bytes", "zstd", "crc32c", "sharding_indexed"})  # the layout's codecs


class StoreError(ValueError):
    """A location that is not a usable mesti store."""


def is_url(location: str) -> bool:
    """True for anything fsspec must open (``https://...``, ``s3://...``, ``zip::...``)."""
    return "://" in location or "::" in location


def _fsspec_url(location: str) -> str:
    """A URL whose path is a zip file is read inside the zip (fsspec's ``zip::`` chain)."""
    if "::" not in location and location.split("?")[0].lower().endswith(".zip"):
        return f"zip::{location}"
    return location


def _zarr_store(location: str) -> zarr.abc.store.Store:
    """The read-only zarr store behind a directory, a zip file or a URL."""
    if is_url(location):
        try:
            return FsspecStore.from_url(_fsspec_url(location), read_only=True)
        except ImportError as error:
            raise StoreError(f"{location}: {error} (s3:// and gs:// need the cloud extra: "
                             "pip install 'mesti-mer[cloud]')") from error
        except (OSError, ValueError) as error:
            raise StoreError(f"{location}: cannot open: {error}") from error
    path = Path(location)
    if path.is_dir():
        return LocalStore(path, read_only=True)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise StoreError(f"{location}: a file, but not a zip file")
        return ZipStore(path, mode="r")
    raise StoreError(f"{location}: no zarr store here (no such directory or file)")


def _check_ranges(store: zarr.abc.store.Store, location: str) -> None:
    """Refuse an HTTP server that ignores range requests: one image of a shard reads a range,
    and a whole file in its place would surface later as a baffling checksum mismatch."""
    first = sync(store.get("zarr.json", default_buffer_prototype(), RangeByteRequest(0, 1)))
    if first is not None and len(first) != 1:
        raise StoreError(f"{location}: the server ignores HTTP range requests; serve the store "
                         "with one that honours them (nginx, Apache, S3, ...)")


def _check_root(attrs: dict, location: str) -> None:
    """The root attributes must name a store of this layout with safe, unique clip ids."""
    if "mesti_store" not in attrs:
        raise StoreError(f"{location}: a zarr group, but not a mesti store (no 'mesti_store' "
                         "attribute)")
    if attrs["mesti_store"] != LAYOUT_VERSION or isinstance(attrs["mesti_store"], bool):
        raise StoreError(f"{location}: store layout version {attrs['mesti_store']!r}; this "
                         f"reader reads layout version {LAYOUT_VERSION}")
    if attrs.get("kind") not in KINDS:
        raise StoreError(f"{location}: kind {attrs.get('kind')!r} is not one of {KINDS}")
    clips = attrs.get("clips", [])
    if not isinstance(clips, list):
        raise StoreError(f"{location}: 'clips' is not a list of clip ids")
    for clip_id in clips:
        if not isinstance(clip_id, str) or not SAFE_CLIP_ID.fullmatch(clip_id):
            raise StoreError(f"{location}: clip id {clip_id!r} is not a single safe path "
                             f"component ({SAFE_CLIP_ID.pattern})")
    if len(set(clips)) != len(clips):
        raise StoreError(f"{location}: 'clips' lists a clip id twice")


def codec_names(codecs: list | tuple) -> set[str]:
    """Names of the codecs in an array's metadata, those nested in a shard included."""
    names = set()
    for codec in codecs:
        names.add(codec["name"])
        configuration = codec.get("configuration") or {}
        for key in ("codecs", "index_codecs"):
            names |= codec_names(configuration.get(key, ()))
    return names


class Store:
    """A faces or modality store opened read-only."""

    def __init__(self, location: str | Path, *, require_complete: bool = True):
        self.location = str(location)
        self._store = _zarr_store(self.location)
        try:
            self.root = zarr.open_group(self._store, mode="r", zarr_format=3,
                                        use_consolidated=False)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
            raise StoreError(f"{location}: no zarr store here (no zarr v3 group)") from error
        except (OSError, ValueError) as error:  # unreadable or malformed root metadata
            raise StoreError(f"{location}: cannot read the root group: {error}") from error
        if is_url(self.location):
            _check_ranges(self._store, self.location)
        attrs = self.root.attrs.asdict()
        _check_root(attrs, self.location)
        if require_complete and attrs.get("complete") is not True:
            raise StoreError(f"{location}: store is incomplete (a run did not finish)")
        self.attrs = attrs
        self.kind: str = attrs["kind"]
        self.clip_ids: list[str] = list(attrs.get("clips", []))
        self._clip_attrs: dict[str, dict] = {}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the underlying file (a zip) or connection."""
        self._store.close()

    def clip_attrs(self, clip_id: str) -> dict:
        if clip_id not in self._clip_attrs:
            if clip_id not in self.clip_ids:
                raise KeyError(f"{self.location}: no clip {clip_id!r}")
            self._clip_attrs[clip_id] = self.root[f"clips/{clip_id}"].attrs.asdict()
        return self._clip_attrs[clip_id]

    @property
    def index(self):  # -> pandas.DataFrame (pandas is imported here, not by the reader)
        """A pandas DataFrame: one row per clip in store order, one column per manifest field
        plus ``n_frames`` (missing values are None; ``frames`` and ``frame_numbers`` are lists).
        """
        import pandas as pd

        rows = [self.clip_attrs(c) for c in self.clip_ids]
        return pd.DataFrame({f: pd.Series([r.get(f) for r in rows], dtype=object)
                             for f in INDEX_FIELDS})

    def frames(self, clip_id: str) -> np.ndarray:
        """Aligned, equalised frames (T, S, S, 3) uint8 of a faces store."""
        return self.array(clip_id, "frames")[...]

    def landmarks(self, clip_id: str) -> np.ndarray:
        """Onset face-mesh landmarks (468, 2) in crop pixels of a faces store."""
        return self.array(clip_id, "landmarks")[...]

    @property
    def names(self) -> list[str]:
        """Image names of a modality store (mesti, dynamic_raw, apex_frame, ...)."""
        return list(self.attrs.get("images", []))

    def image(self, clip_id: str, name: str) -> np.ndarray:
        """One modality image (S, S, 3) uint8."""
        return self.array(clip_id, "images")[self._position(name)]

    def images(self, name: str, clip_ids: list[str] | None = None) -> np.ndarray:
        """One modality for many clips (N, S, S, 3) uint8, in ``clip_ids`` (index) order."""
        position = self._position(name)
        ids = self.clip_ids if clip_ids is None else clip_ids
        return np.stack([self.array(c, "images")[position] for c in ids])

    def float_image(self, clip_id: str, name: str) -> np.ndarray:
        """The float32 pooled image before its uint8 view (up to 8-bit quantisation)."""
        position = self._position(name)
        lo = self.clip_attrs(clip_id)["lo"][position]
        hi = self.clip_attrs(clip_id)["hi"][position]
        image = self.image(clip_id, name).astype(np.float32)
        if lo is None:  # stored as is (the apex frame)
            return image
        return np.float32(lo) + np.float32(hi - lo) * image / np.float32(255)

    def array(self, clip_id: str, name: str) -> zarr.Array:
        """One array of a clip, after checking it is numeric and uses the layout's codecs."""
        if clip_id not in self.clip_ids:
            raise KeyError(f"{self.location}: no clip {clip_id!r}")
        array = self.root[f"clips/{clip_id}/{name}"]
        if not isinstance(array, zarr.Array):
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} is not an array")
        if np.dtype(array.dtype).kind not in "biuf":
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} has dtype {array.dtype}; "
                             "the layout holds numeric arrays only")
        foreign = codec_names(array.metadata.to_dict()["codecs"]) - CODECS
        if foreign:
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} uses codecs "
                             f"{sorted(foreign)}; the layout allows {sorted(CODECS)}")
        return array

    def exists(self, key: str) -> bool:
        """Whether the store holds ``key`` (a missing data file reads as fill values)."""
        return sync(self._store.exists(key))

    def raw(self, key: str) -> bytes | None:
        """The stored bytes under ``key`` (a ``zarr.json`` or a data file), None if absent."""
        buffer = sync(self._store.get(key, default_buffer_prototype()))
        return None if buffer is None else buffer.to_bytes()

    def _position(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"{self.location}: no image {name!r}; has {self.names}")
        return self.names.index(name)


def open_store(location: str | Path, *, require_complete: bool = True) -> Store:
    """Open a store read-only from a directory, a zip file or a URL (anything fsspec reads)."""
    return Store(location, require_complete=require_complete)
