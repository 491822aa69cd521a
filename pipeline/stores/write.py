"""Writing zarr v3 stores: metadata first, then each clip its own group, marked last.

Layout (the spec is cache/README.md): a root group whose attributes carry the stage, its
parameters and ``complete``; ``clips/<clip_id>`` groups, one per clip, each with its arrays
(one data file per array: a whole-clip chunk, or image chunks inside one shard) and the
clip's manifest fields, provenance and content key in its attributes.

Crash safety: a clip's group is rewritten whole, and its ``status`` becomes "ok" (with its
``content_key``) only after its arrays are written; ``complete`` is set only after every
listed clip was checked to hold its arrays. Parallel writers never share a chunk or a shard:
each owns a clip group.

Ownership: a stage writes only into a path that is absent, an empty folder, or a mesti store
of its own kind and layout (``check_owned``); anything else is refused before a byte is
written. One run writes a store at a time (``writer_lock``: a lock file created with
O_CREAT|O_EXCL, which works on NFS and other shared file systems where fcntl locks do not;
a lock left by a killed run on this host is detected by its dead pid and taken over). A run
never deletes a clip it was not asked to: clips that left the manifest stay on disk,
unlisted, until ``finalise(..., prune=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import ConsolidatedMetadata, GroupMetadata

from .limits import ReadLimits
from .read import LAYOUT_VERSION, SAFE_CLIP_ID

LOCK_FILE = ".mesti-writer.lock"  # in the store's root folder; zarr never reads it
# A lock file still empty after this long was left by a run killed while creating it.
ABANDONED_EMPTY_LOCK_S = 30.0
# The store spec (cache/README.md): every array a clip of each kind may hold, with its dtype
# and the stage parameter that must be true for a clip to hold it (None: always). Writing,
# finishing, pruning, verify and export all read this one table, so an array added to a
# stage is checked and exported without another list to update.
SPEC: dict[str, dict[str, tuple[str, str | None]]] = {
    "faces": {"frames": ("uint8", None), "landmarks": ("float32", None)},
    "modalities": {"images": ("uint8", None)},
    "sequences": {"frames": ("uint8", None), "positions": ("float32", None),
                  "landmarks": ("float32", None), "pupil_distance": ("float32", None),
                  "flow": ("float16", "flow")},
}
# The arrays every finished clip of each kind holds whatever its parameters.
ARRAYS = {kind: tuple(n for n, (_, knob) in arrays.items() if knob is None)
          for kind, arrays in SPEC.items()}


def spec_arrays(kind: str, params: dict | None) -> tuple[str, ...]:
    """The arrays every finished clip of a ``kind`` store made with ``params`` holds."""
    params = params or {}
    return tuple(name for name, (_, knob) in SPEC[kind].items()
                 if knob is None or params.get(knob) is True)


class WriteRefused(RuntimeError):
    """A stage refused to write a store; nothing in it was changed."""


class NotOwned(WriteRefused):
    """The output path exists and is not a mesti store of the stage's kind."""


class StoreLocked(WriteRefused):
    """Another run holds the store's writer lock."""

# Equalised face crops are sensor noise at the pixel level: zstd shrinks them by 1.2x for
# 3.4x the write time, so faces are stored with checksums only. Pooled images are mostly
# flat and compress well.
CHECKSUM_ONLY = (Crc32cCodec(),)
COMPRESSED = (ZstdCodec(level=3), Crc32cCodec())


def versions(*packages: str, code: tuple[str, ...] = ()) -> dict[str, str]:
    """Package versions, plus a sha256 of the stage's own modules (``code``).

    The code hash is what makes a clip recompute after a change to how it is computed;
    the project's version number alone would let an edited stage reuse stale clips.
    """
    found = {name: version(name) for name in ("mesti-mer", "numpy", "zarr", *packages)}
    if code:
        digest = hashlib.sha256()
        for module in code:
            digest.update(Path(importlib.util.find_spec(module).origin).read_bytes())
        found["code_sha256"] = digest.hexdigest()
    return found


def check_owned(path: Path, kind: str) -> bool:
    """Whether ``path`` already is a ``kind`` store; False where it is absent or an empty
    folder (a new store goes there). Raises NotOwned for anything else, naming what is there.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    if not path.is_dir():
        raise NotOwned(f"{path}: exists and is not a folder; a {kind} store is written only "
                       "into a new path, an empty folder or a mesti store of its kind")
    entries = sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)
    if not entries:
        return False
    metadata = path / "zarr.json"
    try:
        document = json.loads(metadata.read_text()) if metadata.is_file() else None
    except (OSError, ValueError, UnicodeDecodeError):
        document = None
    attrs = document.get("attributes") if isinstance(document, dict) else None
    if not isinstance(attrs, dict) or "mesti_store" not in attrs:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise NotOwned(f"{path}: a non-empty folder that is not a mesti store (holds {shown}); "
                       f"refusing to write a {kind} store into it. Choose a new path.")
    if attrs.get("mesti_store") != LAYOUT_VERSION or isinstance(attrs["mesti_store"], bool):
        raise NotOwned(f"{path}: a mesti store of layout {attrs['mesti_store']!r}; this "
                       f"version writes layout {LAYOUT_VERSION}. Choose a new path.")
    if attrs.get("kind") != kind:
        raise NotOwned(f"{path}: a {attrs.get('kind')} store, not a {kind} store")
    return True


def open_for_writing(path: Path, kind: str, attrs: dict) -> zarr.Group:
    """Create the store (or reopen one of ``kind`` for an incremental run), marked incomplete.

    Raises NotOwned, before writing anything, where ``path`` holds something else.
    """
    exists = check_owned(path, kind)
    # update_attributes writes zarr.json once; attrs.update rewrites it for every key
    root_attrs = {**attrs, "mesti_store": LAYOUT_VERSION, "kind": kind, "complete": False}
    if exists:
        root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        root.update_attributes(root_attrs)
    else:
        root = zarr.create_group(str(path), attributes=root_attrs)
    root.require_group("clips")
    return root


@contextmanager
def writer_lock(path: Path, kind: str) -> Iterator[None]:
    """Hold the one-writer lock of the store at ``path`` for the body of the ``with``.

    The lock is a file created with O_CREAT|O_EXCL, atomic on local and network file systems
    (NFS v3+, Lustre, GPFS) alike, holding the holder's host, pid and start time. A second
    run meets StoreLocked at once, naming the holder. A lock whose holder ran on this host
    and is no longer alive (a killed run) is stale: it is taken over, with a message on
    stderr. A lock from another host is never taken over automatically: its holder may be
    running; remove the file by hand when you know it is not.
    """
    path = Path(path)
    check_owned(path, kind)  # before creating anything
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    _acquire(lock, mine)
    try:
        yield
    finally:
        try:
            if json.loads(lock.read_text()) == mine:
                lock.unlink()
        except (OSError, ValueError):
            pass


def _acquire(lock: Path, mine: dict) -> None:
    for _ in range(3):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _refuse_odd_lock(lock)
            holder = _holder(lock)
            if holder is None and _age(lock) > ABANDONED_EMPTY_LOCK_S:
                holder = {"host": "unknown", "pid": None, "empty": True}  # killed mid-create
            elif holder is None or not _stale(holder):
                raise StoreLocked(f"{lock.parent}: another run is writing this store "
                                  f"({_describe(holder)}); wait for it to finish, or remove "
                                  f"{lock} if you know that run is gone") from None
            _take_over(lock, holder)
            continue
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(mine))
            file.flush()
            os.fsync(file.fileno())
        return
    raise StoreLocked(f"{lock.parent}: could not take the writer lock {lock}: other runs "
                      "keep taking it")


def _refuse_odd_lock(lock: Path) -> None:
    """A lock path that is not a plain file (a folder, a link, a device) was not left by a
    run: it is never taken over or removed, and the run stops naming it."""
    try:
        mode = os.lstat(lock).st_mode
    except FileNotFoundError:
        return  # released meanwhile
    if stat.S_ISREG(mode):
        return
    what = "a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) \
        else "not a plain file"
    raise StoreLocked(f"{lock}: the store's writer lock path is {what}, not a lock file left "
                      "by a run; move it away, then run again")


def _age(lock: Path) -> float:
    try:
        return time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a run that is just starting"
    started = holder.get("started")
    since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) \
        if isinstance(started, (int, float)) else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{since}"


def _holder(lock: Path) -> dict | None:
    """The lock's holder; None while its holder has created it but not yet written it."""
    for _ in range(20):
        try:
            holder = json.loads(lock.read_text())
            if isinstance(holder, dict):
                return holder
        except FileNotFoundError:
            return {}  # released meanwhile: try again
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def _stale(holder: dict) -> bool:
    """Released meanwhile, or held by a dead process on this host."""
    if not holder:
        return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _take_over(lock: Path, holder: dict) -> None:
    """Move a stale lock aside, atomically, so that of two runs taking it over one wins."""
    if not holder:
        return
    aside = lock.with_name(f"{lock.name}.stale-{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # another run moved it first
    if _holder(aside) != (None if holder.get("empty") else holder):
        # moved a fresh lock of a run that won the race: restore it
        try:
            os.link(aside, lock)
        except FileExistsError:
            pass
    else:
        gone = "left empty by a run killed while creating it" if holder.get("empty") else \
            f"of pid {holder['pid']} on {holder['host']}, which is no longer running"
        print(f"{lock.parent}: taking over the writer lock {gone}", file=sys.stderr)
    aside.unlink(missing_ok=True)


def existing_key(path: Path, clip_id: str) -> str | None:
    """The content key of a finished clip in the store, or None."""
    try:
        group = zarr.open_group(str(path), path=f"clips/{clip_id}", mode="r",
                                use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    attrs = group.attrs
    return attrs.get("content_key") if attrs.get("status") == "ok" else None


# zarr v3 dimension names of the faces and modality stores' arrays (xarray reads them);
# other stores pass theirs to write_clip.
DIMENSION_NAMES = {"frames": ("frame", "y", "x", "channel"), "landmarks": ("point", "xy"),
                   "images": ("image", "y", "x", "channel")}


def write_clip(path: Path, clip_id: str, arrays: dict[str, np.ndarray], attrs: dict,
               key: str, per_image: tuple[str, ...] = (), compress: bool = True,
               dimensions: dict[str, tuple[str, ...]] | None = None) -> None:
    """Write one clip's arrays, then mark it finished with its content key.

    Every array carries zarr v3 ``dimension_names``: from ``dimensions``, else from
    DIMENSION_NAMES by the array's name; an array with neither is a programming error.

    Arrays named in ``per_image`` hold one image (first axis) per chunk inside one shard,
    for readers that want one image of many clips (the trainer reads one modality).
    The others are one chunk: a faces clip is read whole, and whole-chunk reads are six
    times faster than assembling 60 image chunks (writes a third faster).
    """
    group = zarr.create_group(str(path), path=f"clips/{clip_id}", overwrite=True,
                              attributes={"status": "writing"})
    names = {**DIMENSION_NAMES, **(dimensions or {})}
    for name, data in arrays.items():
        if len(names.get(name, ())) != data.ndim:
            raise ValueError(f"{clip_id}/{name}: no dimension names for a {data.ndim}-d array")
    for name, data in arrays.items():
        chunks = (1, *data.shape[1:]) if name in per_image else data.shape
        array = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                                   shards=data.shape if name in per_image else None,
                                   compressors=COMPRESSED if compress else CHECKSUM_ONLY,
                                   fill_value=0, dimension_names=names[name],
                                   # every chunk is written, even one equal to the fill
                                   # value: a finished clip has all its data files
                                   config={"write_empty_chunks": True})
        if name in per_image:
            write_whole_shard(Path(path), array, data)
        elif compress:
            array[...] = data
        else:
            write_whole_chunk(Path(path), array, data)
    group.update_attributes({**attrs, "content_key": key, "status": "ok"})


def write_whole_chunk(path: Path, array: zarr.Array, data: np.ndarray) -> None:
    """The single chunk of an unsharded, checksum-only array, as zarr writes it: the
    values' little-endian bytes, then their crc32c (little-endian).

    A faces clip is 9 MB of pixels; zarr's codec pipeline and event loop around the same
    bytes cost several times a plain file write. A test checks that the file is
    byte-identical to zarr's own.
    """
    codecs = [codec.to_dict()["name"] for codec in array.metadata.codecs]
    if codecs != ["bytes", "crc32c"] or array.metadata.chunk_grid.chunk_shape != data.shape:
        raise ValueError(f"{array.path}: not one checksum-only chunk ({codecs})")
    raw = _le_bytes(data)
    _write_file(path, array, [raw, _crc32c(raw)])


def write_whole_shard(path: Path, array: zarr.Array, data: np.ndarray) -> None:
    """The single shard of an array of one chunk per image, compressed, as zarr writes it:
    each image's bytes zstd-compressed and followed by their crc32c, in order, then the
    index (each chunk's offset and length, little-endian uint64) and the index's crc32c.

    zarr's sharding pipeline costs several times this for a clip's images; a test checks
    that the file is byte-identical to zarr's own.
    """
    (sharding,) = array.metadata.codecs
    config = sharding.to_dict().get("configuration", {})
    inner = [c["name"] for c in config.get("codecs", [])]
    index = [c["name"] for c in config.get("index_codecs", [])]
    if (sharding.to_dict()["name"] != "sharding_indexed" or inner != ["bytes", "zstd", "crc32c"]
            or index != ["bytes", "crc32c"] or config.get("index_location") != "end"
            or tuple(config["chunk_shape"]) != (1, *data.shape[1:])
            or array.metadata.chunk_grid.chunk_shape != data.shape):
        raise ValueError(f"{array.path}: not one shard of zstd-compressed images ({inner})")
    zstd = config["codecs"][1]["configuration"]
    codec = numcodecs.Zstd(level=zstd["level"], checksum=zstd["checksum"])
    parts, offsets, offset = [], [], 0
    for image in data:
        compressed = codec.encode(_le_bytes(image))
        parts += [compressed, _crc32c(compressed)]
        offsets += [offset, len(compressed) + 4]
        offset += len(compressed) + 4
    table = np.array(offsets, dtype="<u8").view(np.uint8)
    _write_file(path, array, [*parts, table, _crc32c(table)])


def _le_bytes(data: np.ndarray) -> np.ndarray:
    """An array's values as little-endian bytes (zarr's ``bytes`` codec), C order."""
    values = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).reshape(-1)
    return values.view(np.uint8)


def _crc32c(data) -> bytes:
    return google_crc32c.value(data).to_bytes(4, "little")


def _write_file(path: Path, array: zarr.Array, parts: list) -> None:
    (key,) = data_keys(array)
    file = path / key
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as handle:
        for part in parts:
            handle.write(part)


def finished(path: Path, clip_id: str, kind: str, params: dict | None = None) -> bool:
    """A clip is finished when its status is ok and every array of its kind (and of its
    store's ``params``: a sequences store's flow) is there with all its data files (a status
    alone does not prove the arrays were written)."""
    if existing_key(path, clip_id) is None:
        return False
    for name in spec_arrays(kind, params):
        try:
            array = zarr.open_array(str(path), path=f"clips/{clip_id}/{name}", mode="r",
                                    zarr_format=3)
        except (FileNotFoundError, KeyError, ValueError, OSError):
            return False
        if not all((Path(path) / key).is_file() for key in data_keys(array)):
            return False
    return True


def data_keys(array: zarr.Array) -> list[str]:
    """Store keys of an array's data files (one per shard, or per chunk when unsharded)."""
    metadata = array.metadata
    return [f"{array.path}/{metadata.encode_chunk_key(coords)}"
            for coords in metadata.chunk_grid.all_chunk_coords(array.shape)]


def not_a_clip(folder: Path, kind: str) -> str | None:
    """Why ``folder`` (an entry of a store's ``clips/``) is not a clip group of a ``kind``
    store; None when it is one. A clip group is a real folder (not a link) named by a safe
    clip id, whose zarr.json is a zarr v3 group with a clip's attributes (finished: its
    ``clip_id`` is the folder's name; or left half-written by a killed run), and whose
    entries are arrays of the kind's spec. Only such groups are ever pruned."""
    if folder.is_symlink():
        return "a symbolic link"
    if not folder.is_dir():
        return "not a folder"
    if not SAFE_CLIP_ID.fullmatch(folder.name):
        return "not a clip id"
    try:
        document = json.loads((folder / "zarr.json").read_text())
    except FileNotFoundError:
        return "no zarr.json"
    except (OSError, ValueError, UnicodeDecodeError):
        return "an unreadable zarr.json"
    if not isinstance(document, dict) or document.get("zarr_format") != 3 \
            or document.get("node_type") != "group":
        return "its zarr.json is not a zarr v3 group"
    attrs = document.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    if attrs != {"status": "writing"} and (attrs.get("status") != "ok"
                                           or attrs.get("clip_id") != folder.name):
        return "its attributes are not those of a clip of this store"
    foreign = sorted(p.name for p in folder.iterdir() if p.name != "zarr.json" and (
        p.name not in SPEC[kind] or p.is_symlink() or not p.is_dir()))
    if foreign:
        return f"holds {', '.join(foreign)}, not arrays of a {kind} clip"
    return None


def finalise(path: Path, keep: list[str], attrs: dict, *, in_manifest: list[str] | None = None,
             prune: bool = False) -> dict[str, list[str]]:
    """List the finished clips of ``keep`` in the root, mark the store complete.

    Clips on disk that are not in ``in_manifest`` (default ``keep``) left the manifest: with
    ``prune`` they are deleted, otherwise kept on disk, untouched, and recorded in the root's
    ``unlisted`` (never in ``clips``, so a reader sees exactly this run's clips). Anything
    else under ``clips/`` (a user's folder, a link: :func:`not_a_clip`) is never deleted nor
    listed. Returns ``broken`` (clips of ``keep`` without their arrays: left out of
    ``clips``), ``pruned``, ``unlisted`` and ``foreign`` (one line per entry left as it is).
    """
    root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    kind = root.attrs["kind"]
    clips_dir = Path(path) / "clips"
    listed = set(keep if in_manifest is None else in_manifest)
    entries = sorted(p for p in clips_dir.iterdir() if p.name != "zarr.json"
                     and p.name not in listed) if clips_dir.is_dir() else []
    why = {p.name: not_a_clip(p, kind) for p in entries}
    foreign = [f"{clips_dir / name}: {reason}; not a clip of this store, left as it is"
               for name, reason in why.items() if reason]
    gone = [name for name, reason in why.items() if reason is None]
    pruned: list[str] = []
    unlisted = [] if prune else gone
    for clip_id in gone if prune else ():
        try:
            shutil.rmtree(clips_dir / clip_id)
            pruned.append(clip_id)
        except OSError as error:  # kept, and listed as unlisted: a later prune retries
            unlisted.append(clip_id)
            foreign.append(f"{clips_dir / clip_id}: could not be deleted "
                           f"({error.strerror or error}); kept, listed as unlisted")
    good = [c for c in keep if finished(path, c, kind, root.attrs.get("params"))]
    root.update_attributes({**attrs, "clips": good, "unlisted": unlisted, "complete": True})
    consolidate(path, good)
    return {"broken": sorted(set(keep) - set(good)), "pruned": pruned, "unlisted": unlisted,
            "foreign": foreign}


def consolidate(path: Path, clip_ids: list[str]) -> None:
    """Copy the metadata of ``clips`` and of each listed clip's group and arrays into the
    root zarr.json (zarr v3 consolidated metadata), so a reader gets the whole index and
    every array's metadata from one document: over a URL one request, not one per clip.

    Only the listed clips: an unlisted clip stays on disk but out of the copy, as it is out
    of the index. A copy that would put the root over the readers' default metadata limit
    (``ReadLimits.max_metadata_bytes``) is not written. The copy is written by zarr's own
    serialiser, ordered by path, so the same store gives the same bytes; the rest of the
    store is untouched. A writer reopening the store (``open_for_writing``) rewrites the root
    without it, so an unfinished store never carries a stale copy; ``verify_store`` checks
    the copy against every node's own file.
    """
    root = zarr.open_group(str(path), mode="r", use_consolidated=False)
    members = {"clips": root["clips"].metadata}
    for clip_id in clip_ids:
        group = root[f"clips/{clip_id}"]
        members[f"clips/{clip_id}"] = group.metadata
        for name, array in sorted(group.arrays()):
            members[f"clips/{clip_id}/{name}"] = array.metadata
    empty = ConsolidatedMetadata(metadata={})  # zarr marks a child group's children so
    members = {key: dataclasses.replace(node, consolidated_metadata=empty)
               if isinstance(node, GroupMetadata) else node for key, node in members.items()}
    metadata = dataclasses.replace(root.metadata,
                                   consolidated_metadata=ConsolidatedMetadata(metadata=members))
    document = metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
    if len(document) > ReadLimits.max_metadata_bytes:
        # (some 6 KB a clip: past ~2,500 clips) a root this large is over the metadata
        # limit readers apply by default; its clips stay readable one by one
        return
    partial = Path(path) / "zarr.json.partial"
    partial.write_bytes(document)
    os.replace(partial, Path(path) / "zarr.json")
