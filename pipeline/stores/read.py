"""Reading mesti stores: numpy and zarr only (fsspec for URLs), no MediaPipe, Numba or Dask.

    from mesti.pipeline.stores.read import open_store
    store = open_store("cache/modalities/sample.zarr")
    store.index                            # a pandas DataFrame, one row per clip in store order
    store.image("sub01_EP01_05f", "mesti")  # (224, 224, 3) uint8
    store.images("mesti")                  # (N, 224, 224, 3) uint8, in index order
    open_store("cache/sequences/sample.zarr").sequence("sub01_EP01_05f")["landmarks"]

A store is opened from a directory, a zip file (``mesti cache export``) or a URL read through
fsspec: ``https://host/sample.zarr``, ``https://host/sample.zip`` (read inside the zip over
HTTP range requests), ``s3://`` or ``gs://`` with the ``cloud`` extra installed. Everything
is read-only. A store finalised by this project carries its listed clips' group and array
metadata in the root zarr.json (zarr v3 consolidated metadata), so the index and every array
handle come from that one document; an older store is read node by node, with several
requests in flight at once. Array handles are checked once and kept.

A store is untrusted input: clip ids from its attributes become paths, so each must be one
safe path component; the layout version must be the one this reader knows; arrays must be
numeric and use only the codecs the layout specifies, so nothing is ever unpickled or handed
to a decoder the format does not name. Time and memory are bounded (``ReadLimits``, in
limits.py): declared shapes, chunk counts and zip member sizes are checked before anything
is allocated, a zstd chunk must declare a decompressed size no larger than its chunk (in
this reader's own array handles: zarr's codec registry and configuration are left alone),
and every URL read has connect and read timeouts and retries transient errors with
back-off. The layout is documented in cache/README.md for readers without this code.
"""

from __future__ import annotations

import asyncio
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, ZipStore

from .keys import MANIFEST_FIELDS, recompute_key
from .limits import ReadLimits, StoreError, bounded

LAYOUT_VERSION = 1
KINDS = ("faces", "modalities", "sequences")
SEQUENCE_ARRAYS = ("frames", "positions", "landmarks", "pupil_distance", "flow")  # flow optional
# The index's columns: the manifest fields (keys.py) plus n_frames.
INDEX_FIELDS = (*MANIFEST_FIELDS, "n_frames")
SAFE_CLIP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CODECS = frozenset({"bytes", "zstd", "crc32c", "sharding_indexed"})  # the layout's codecs
# Reads in flight at once where several are needed (an index or one image of many clips
# over a URL without consolidated metadata): enough to hide a slow link's latency, few
# enough not to look like a flood to a server.
CONCURRENT_READS = 16


def is_url(location: str) -> bool:
    """True for anything fsspec must open (``https://...``, ``s3://...``, ``zip::...``)."""
    return "://" in location or "::" in location


def _fsspec_url(location: str) -> str:
    """A URL whose path is a zip file is read inside the zip (fsspec's ``zip::`` chain)."""
    if "::" not in location and location.split("?")[0].lower().endswith(".zip"):
        return f"zip::{location}"
    return location


def _transient(error: BaseException) -> bool:
    """Worth another try: a timeout, a dropped connection, a server error (5xx), also where
    fsspec reports one as "not found" (its HTTP layer does, with the real cause chained)."""
    return _transient_cause(error) is not None


def _transient_cause(error: BaseException | None) -> BaseException | None:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, StoreError):
            return None
        status = getattr(error, "status", None)
        if isinstance(status, int):
            return error if status >= 500 or status in (408, 429) else None
        if isinstance(error, (asyncio.TimeoutError, TimeoutError, ConnectionError)) or (
                type(error).__module__.startswith("aiohttp")):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _http_refusal(error: BaseException | None) -> tuple[int, str, str] | None:
    """(status, reason, URL) of a server's 4xx answer somewhere in ``error``'s chain."""
    seen = 0
    while error is not None and seen < 10:
        status = getattr(error, "status", None)
        if isinstance(status, int) and 400 <= status < 500:
            url = getattr(getattr(error, "request_info", None), "real_url", "") or ""
            return status, str(getattr(error, "message", "") or ""), str(url)
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _refused(location: str, what: str, error: BaseException,
             ranged: bool = False) -> StoreError | None:
    """A one-line error for a server that answered a read with a 4xx status (its status
    and URL, never the body), or None when ``error`` is not one."""
    refusal = _http_refusal(error)
    if refusal is None:
        return None
    status, reason, url = refusal
    hint = (" to a range request (reading a part of a file); serve the store with a server "
            "that honours ranges (nginx, Apache, S3, ...)") if ranged else ""
    return StoreError(f"{location}: reading {what}: the server answered HTTP {status}"
                      f"{' ' + reason if reason else ''}{hint} ({url or 'URL unknown'})")


def _give_up(location: str, what: str, tries: int, limits: ReadLimits,
             error: BaseException) -> StoreError:
    error = _transient_cause(error) or error
    cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return StoreError(f"{location}: {what}: no answer after {tries} tries (connect and read "
                      f"timeout {limits.url_timeout_s:g} s each, MESTI_URL_TIMEOUT_S): {cause}")


class PatientStore(FsspecStore):
    """An fsspec store whose reads retry transient errors with back-off and then fail with
    the URL, the timeout and the cause."""

    limits: ReadLimits = ReadLimits()
    location: str = ""

    async def _patiently(self, what: str, call, ranged: bool = False):
        tries = self.limits.url_retries + 1
        for attempt in range(tries):
            try:
                return await call()
            except Exception as error:
                if not _transient(error):
                    refused = None if isinstance(error, FileNotFoundError) else \
                        _refused(self.location, what, error, ranged)  # a 404: key absent
                    if refused is not None:
                        raise refused from None
                    raise
                if attempt + 1 == tries:
                    raise _give_up(self.location, what, tries, self.limits, error) from error
                await asyncio.sleep(self.limits.url_backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    async def get(self, key, prototype, byte_range=None):
        return await self._patiently(key, lambda: FsspecStore.get(self, key, prototype,
                                                                  byte_range),
                                     ranged=byte_range is not None)

    async def exists(self, key):
        return await self._patiently(key, lambda: FsspecStore.exists(self, key))

    async def getsize(self, key):
        return await self._patiently(key, lambda: FsspecStore.getsize(self, key))


def _url_options(url: str, limits: ReadLimits) -> dict:
    """fsspec options giving every HTTP request connect and read timeouts (the zip:: layer
    passes them on to the HTTP file system under its protocol's name)."""
    protocol = url.split("::")[-1].split("://")[0].lower()
    if protocol not in ("http", "https"):
        return {}
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.url_timeout_s,
                                    sock_read=limits.url_timeout_s)
    options = {"client_kwargs": {"timeout": timeout}}
    return {protocol: options} if "::" in url else options


def _open_url(location: str, limits: ReadLimits) -> FsspecStore:
    url = _fsspec_url(location)
    tries = limits.url_retries + 1
    for attempt in range(tries):
        try:
            store = PatientStore.from_url(url, storage_options=_url_options(url, limits),
                                          read_only=True)
            break
        except ImportError as error:
            raise StoreError(f"{location}: {error} (s3:// and gs:// need the cloud extra: "
                             "pip install 'mesti-mer[cloud]')") from error
        except Exception as error:
            if not _transient(error):
                refused = _refused(location, "the store", error)
                if refused is not None:
                    raise refused from None
                if isinstance(error, FileNotFoundError) and \
                        url.split("::")[-1].lower().startswith(("http://", "https://")):
                    raise StoreError(f"{location}: cannot open: the server answered HTTP 404 "
                                     "Not Found (no such file there)") from None
                if isinstance(error, (OSError, ValueError, zipfile.BadZipFile)):
                    raise StoreError(f"{location}: cannot open: {error}") from error
                raise
            if attempt + 1 == tries:
                raise _give_up(location, "opening", tries, limits, error) from error
            import time

            time.sleep(limits.url_backoff_s * 2 ** attempt)
    store.limits, store.location = limits, location
    archive = getattr(store.fs, "zip", None)
    if isinstance(archive, zipfile.ZipFile):
        _check_members(archive.infolist(), location, limits)
    return store


def _check_members(members: list[zipfile.ZipInfo], location: str, limits: ReadLimits) -> None:
    """Refuse a zip whose members claim more than the limits, before any is inflated."""
    for member in members:
        name = member.filename.rsplit("/", 1)[-1]
        metadata = name.endswith(".json") or name == "SHA256SUMS"
        limit = limits.max_metadata_bytes if metadata else limits.max_array_bytes
        if member.file_size > limit:
            raise StoreError(f"{location}: zip member {member.filename} declares "
                             f"{member.file_size} bytes, over the limit of {limit} "
                             f"(MESTI_{'MAX_METADATA_BYTES' if metadata else 'MAX_ARRAY_BYTES'})")


def _zarr_store(location: str, limits: ReadLimits) -> zarr.abc.store.Store:
    """The read-only zarr store behind a directory, a zip file or a URL."""
    if is_url(location):
        return _open_url(location, limits)
    path = Path(location)
    if path.is_dir():
        return LocalStore(path, read_only=True)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise StoreError(f"{location}: a file, but not a zip file")
        with zipfile.ZipFile(path) as archive:
            _check_members(archive.infolist(), location, limits)
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
    """A faces, modality or sequences store opened read-only."""

    def __init__(self, location: str | Path, *, require_complete: bool = True,
                 limits: ReadLimits | None = None, consolidated: bool = True):
        self.location = str(location)
        self.limits = ReadLimits.from_env() if limits is None else limits
        self._store = _zarr_store(self.location, self.limits)
        try:
            # a store finalised by this project carries every listed clip's metadata in its
            # root zarr.json (zarr's consolidated metadata): the index and every array
            # handle then cost no request; an older store is read node by node
            self.root = zarr.open_group(self._store, mode="r", zarr_format=3,
                                        use_consolidated=None if consolidated else False)
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
        # whether clip and array metadata come from the root's consolidated metadata
        self.consolidated: bool = self.root.metadata.consolidated_metadata is not None
        self._clip_attrs: dict[str, dict] = {}
        self._arrays: dict[tuple[str, str], zarr.Array] = {}  # checked, bounded handles

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

        self._load_clip_attrs(self.clip_ids)
        rows = [self.clip_attrs(c) for c in self.clip_ids]
        return pd.DataFrame({f: pd.Series([r.get(f) for r in rows], dtype=object)
                             for f in INDEX_FIELDS})

    def frames(self, clip_id: str) -> np.ndarray:
        """Aligned, equalised frames (T, S, S, 3) uint8 of a faces store."""
        self._require_kind("faces", "frames", "sequence(clip_id)['frames']")
        return self.array(clip_id, "frames")[...]

    def landmarks(self, clip_id: str) -> np.ndarray:
        """Onset face-mesh landmarks (468, 2) in crop pixels of a faces store."""
        self._require_kind("faces", "landmarks", "sequence(clip_id)['landmarks']")
        return self.array(clip_id, "landmarks")[...]

    def _require_kind(self, kind: str, method: str, sequences_way: str) -> None:
        """A clear error when a reading method meets a store of another kind."""
        if self.kind == kind:
            return
        instead = {"modalities": "image(clip_id, name) and images(name)",
                   "sequences": sequences_way}.get(self.kind, "")
        raise StoreError(f"{self.location}: a {self.kind} store; {method}() reads a {kind} "
                         f"store" + (f" (this one is read with {instead})" if instead else ""))

    def sequence(self, clip_id: str) -> dict[str, np.ndarray]:
        """A sequences store's arrays of one clip by name: frames (P, T, S, S) uint8,
        positions (P, T), landmarks (P, T, 68, 2), pupil_distance (P, T) and, where the
        store computed it, flow (P, T - 1, S, S, 2). Raises StoreError for a clip whose
        content key no longer matches its attributes (a label edited by hand)."""
        if self.kind != "sequences":
            raise StoreError(f"{self.location}: a {self.kind} store, not a sequences store")
        if clip_id not in self.clip_ids:
            raise KeyError(f"{self.location}: no clip {clip_id!r}")
        attrs = self.clip_attrs(clip_id)
        try:
            recomputed = recompute_key("sequences", attrs)
        except KeyError as error:
            raise StoreError(f"{self.location}: clip {clip_id}: cannot recompute its content "
                             f"key: {error.args[0]}") from error
        if recomputed != attrs.get("content_key"):
            raise StoreError(f"{self.location}: clip {clip_id}: its content_key is not the one "
                             "recomputed from its attributes: an attribute (a label?) was "
                             "edited after it was written; `mesti cache verify` lists it")
        present = set(self.root[f"clips/{clip_id}"].array_keys())
        missing = set(SEQUENCE_ARRAYS[:-1]) - present
        if missing:
            raise StoreError(f"{self.location}: clip {clip_id} lacks {sorted(missing)}")
        names = [name for name in SEQUENCE_ARRAYS if name in present]
        arrays = [self.array(clip_id, name) for name in names]
        return dict(zip(names, self._read(arrays, ...), strict=True))

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
        self._load_arrays(ids, "images")
        return np.stack(self._read([self.array(c, "images") for c in ids], position))

    def float_image(self, clip_id: str, name: str) -> np.ndarray:
        """The float32 image before its uint8 view (up to 8-bit quantisation); ``lo``/``hi``
        are one number, or one per channel (``flow_uvs``)."""
        position = self._position(name)
        lo = self.clip_attrs(clip_id)["lo"][position]
        hi = self.clip_attrs(clip_id)["hi"][position]
        image = self.image(clip_id, name).astype(np.float32)
        if lo is None:  # stored as is (the apex frame)
            return image
        lo, hi = np.float32(lo), np.float32(hi)
        return lo + (hi - lo) * image / np.float32(255)

    def array(self, clip_id: str, name: str) -> zarr.Array:
        """One array of a clip, after checking it is numeric and uses the layout's codecs
        (checked once: the handle is kept, so later reads cost no metadata request).

        Its zstd chunks are decoded by ``BoundedZstdCodec``.
        """
        if (clip_id, name) not in self._arrays:
            if clip_id not in self.clip_ids:
                raise KeyError(f"{self.location}: no clip {clip_id!r}")
            self._arrays[clip_id, name] = self._checked(
                clip_id, name, self.root[f"clips/{clip_id}/{name}"])
        return self._arrays[clip_id, name]

    def _checked(self, clip_id: str, name: str, array: object) -> zarr.Array:
        if not isinstance(array, zarr.Array):
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} is not an array")
        if np.dtype(array.dtype).kind not in "biuf":
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} has dtype {array.dtype}; "
                             "the layout holds numeric arrays only")
        foreign = codec_names(array.metadata.to_dict()["codecs"]) - CODECS
        if foreign:
            raise StoreError(f"{self.location}: clips/{clip_id}/{name} uses codecs "
                             f"{sorted(foreign)}; the layout allows {sorted(CODECS)}")
        problem = declared_problem(array, self.limits)
        if problem:
            raise StoreError(f"{self.location}: clips/{clip_id}/{name}: {problem}")
        return bounded(array)

    def _gather(self, coroutines: list) -> list:
        """The coroutines' results in order (an exception where one raised), at most
        CONCURRENT_READS in flight."""
        async def run() -> list:
            limit = asyncio.Semaphore(CONCURRENT_READS)

            async def one(coroutine):
                async with limit:
                    return await coroutine

            return await asyncio.gather(*map(one, coroutines), return_exceptions=True)

        return sync(run())

    def _read(self, arrays: list[zarr.Array], selection: object) -> list[np.ndarray]:
        """``array[selection]`` of each array, read together; the first error in order."""
        parts = self._gather([a.async_array.getitem(selection) for a in arrays])
        for part in parts:
            if isinstance(part, BaseException):
                raise part
        return parts

    def _load_clip_attrs(self, clip_ids: list[str]) -> None:
        """Read the attributes of many clips at once where each costs a request (no
        consolidated metadata); a clip that fails is left to ``clip_attrs`` to report."""
        wanted = [c for c in dict.fromkeys(clip_ids)
                  if c not in self._clip_attrs and c in self.clip_ids]
        if self.consolidated or len(wanted) < 2:
            return
        found = self._gather([self.root._async_group.getitem(f"clips/{c}") for c in wanted])
        for clip_id, node in zip(wanted, found, strict=True):
            if isinstance(node, AsyncGroup):
                self._clip_attrs[clip_id] = dict(node.metadata.attributes)

    def _load_arrays(self, clip_ids: list[str], name: str) -> None:
        """Open one array of many clips at once where each costs a request; an array that
        fails is left to ``array`` to report."""
        wanted = [c for c in dict.fromkeys(clip_ids)
                  if (c, name) not in self._arrays and c in self.clip_ids]
        if self.consolidated or len(wanted) < 2:
            return
        found = self._gather([self.root._async_group.getitem(f"clips/{c}/{name}")
                              for c in wanted])
        for clip_id, node in zip(wanted, found, strict=True):
            if isinstance(node, AsyncArray):
                try:
                    self._arrays[clip_id, name] = self._checked(clip_id, name, zarr.Array(node))
                except StoreError:
                    pass

    def exists(self, key: str) -> bool:
        """Whether the store holds ``key`` (a missing data file reads as fill values)."""
        return sync(self._store.exists(key))

    def raw(self, key: str) -> bytes | None:
        """The stored bytes under ``key`` (a ``zarr.json`` or a data file), None if absent.

        Refuses a file over the limits (metadata, or one array's bytes) before reading it.
        """
        if not isinstance(self._store, ZipStore):  # a zip's members were checked on opening
            try:
                size = sync(self._store.getsize(key))
            except FileNotFoundError:
                return None
            name = key.rsplit("/", 1)[-1]
            limit = self.limits.max_metadata_bytes \
                if name.endswith(".json") or name == "SHA256SUMS" else self.limits.max_array_bytes
            if size > limit:
                raise StoreError(f"{self.location}: {key} is {size} bytes, over the limit of "
                                 f"{limit}")
        buffer = sync(self._store.get(key, default_buffer_prototype()))
        return None if buffer is None else buffer.to_bytes()

    def _position(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"{self.location}: no image {name!r}; has {self.names}")
        return self.names.index(name)

    def xarray(self, clip_id: str):  # -> xarray.Dataset (xarray is imported here only)
        """One clip as a lazy xarray Dataset: its arrays with their dimension names and the
        clip's attributes; a modality store's ``image`` dimension has the image names as its
        coordinate, so ``view.images.sel(image="mesti")`` picks one image by name.

        Each array passes the reader's checks (numeric, the layout's codecs, declared sizes
        within the limits) before xarray opens the group.
        """
        import xarray

        if clip_id not in self.clip_ids:
            raise KeyError(f"{self.location}: no clip {clip_id!r}")
        for name in self.root[f"clips/{clip_id}"].array_keys():
            self.array(clip_id, name)
        view = xarray.open_zarr(self._store, group=f"clips/{clip_id}", consolidated=False,
                                zarr_format=3)
        if self.kind == "modalities" and "image" in view.dims:
            view = view.assign_coords(image=self.names)
        return view


def declared_problem(array: zarr.Array, limits: ReadLimits) -> str | None:
    """What in an array's declared shape, chunks or shards is over ``limits``; None if
    nothing. Read from its metadata alone, before any chunk is read or allocated."""
    shape = tuple(array.shape)
    itemsize = np.dtype(array.dtype).itemsize
    if not 1 <= len(shape) <= 5:  # at most a sequences flow: phase, step, y, x, uv
        return f"declares {len(shape)} dimensions; the layout's arrays have 1 to 5"
    if shape[0] > limits.max_frames:
        return (f"declares {shape[0]} images along its first axis, over the limit of "
                f"{limits.max_frames} (MESTI_MAX_FRAMES)")
    if any(side > limits.max_side for side in shape[1:3]):
        return (f"declares shape {shape}, an image side over the limit of {limits.max_side} "
                "(MESTI_MAX_SIDE)")
    blocks = [shape, tuple(array.chunks)] + ([tuple(array.shards)] if array.shards else [])
    for block in blocks:
        if len(block) != len(shape) or min(block, default=1) < 1:
            return f"declares chunks {block} for shape {shape}"
        if math.prod(block) * itemsize > limits.max_array_bytes:
            return (f"declares {math.prod(block) * itemsize} bytes in shape or chunk {block}, "
                    f"over the limit of {limits.max_array_bytes} (MESTI_MAX_ARRAY_BYTES)")
    chunks = math.prod(math.ceil(n / c) for n, c in zip(shape, array.chunks, strict=True))
    if chunks > limits.max_chunks:
        return (f"declares {chunks} chunks, over the limit of {limits.max_chunks} "
                "(MESTI_MAX_CHUNKS)")
    return None


def open_store(location: str | Path, *, require_complete: bool = True,
               limits: ReadLimits | None = None, consolidated: bool = True) -> Store:
    """Open a store read-only from a directory, a zip file or a URL (anything fsspec reads).

    ``limits`` bound what reading it may cost; default ``ReadLimits.from_env()``.
    ``consolidated=False`` ignores the root's consolidated metadata and reads each clip's
    own metadata (as for a store written before it existed; ``bench.remote`` compares both).
    """
    return Store(location, require_complete=require_complete, limits=limits,
                 consolidated=consolidated)
