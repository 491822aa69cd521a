"""``mesti cache verify``: everything wrong with a store, and ``--repair``.

``verify_store`` reads every chunk of every array of every clip (zarr checks each chunk's
crc32c and each shard index's), checks the shapes the layout promises, the store's
completeness, and recomputes every clip's content key from its own attributes and
provenance, so a flipped byte or an edited attribute is found. Like nnU-Net's integrity
check, it collects every problem of every clip and returns them together instead of
stopping at the first. An exported zip (``export``) is checked against its ``SHA256SUMS``
and against the bytes ``export`` would have written.

Every function takes a directory, a zip file or a URL, as ``stores.read.open_store`` does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import zarr

from . import write as writer
from .archive import (
    CHECKSUMS,
    MANIFEST,
    READ_ERRORS,
    add_member,
    clip_arrays,
    error_text,
    open_checked,
)
from .keys import recompute_key
from .read import Store, StoreError, open_store
from .write import SPEC, data_keys

LANDMARKS = 468
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store: where (clip and array, None for the store) and what."""

    clip: str | None
    array: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = "store" if self.clip is None else f"clip {self.clip}"
        where += f", {self.array}" if self.array else ""
        return f"{where}: {self.code}: {self.message}"


# verify ----------------------------------------------------------------------------------


def verify_store(location: str | Path) -> list[Problem]:
    """Every problem of the store at ``location``; an empty list when it is sound.

    Raises StoreError only where the location is not a mesti store at all (or one this
    reader refuses: another layout version, an unsafe clip id).

    Every node is checked in its own zarr.json, and the root's consolidated copy of them
    (what readers use) against those files.
    """
    with open_checked(location, require_complete=False, consolidated=False) as store:
        problems = _root_problems(store)
        sizes: dict[str, int] = {}
        for clip_id in store.clip_ids:
            problems += _clip_problems(store, clip_id, sizes)
        problems += _size_problems(sizes)
        problems += _checksum_problems(store)
        problems += _consolidated_problems(store)
    return problems + _archive_problems(location)


def repair_store(location: str | Path) -> tuple[list[Problem], list[str]]:
    """Verify the store folder at ``location`` and drop every clip with a problem, so the
    next run of the stage that wrote it recomputes them; return the problems and the
    dropped clips.

    A finished clip is reused by the next run on its content key alone, without reading its
    chunks: a corrupt chunk would stay. Repair takes the store's writer lock, unlists the bad
    clips and marks the store incomplete (readers refuse it until a run finishes it), then
    deletes their groups; killed part-way, the store is still incomplete and a run recomputes
    whatever is missing. Store-level problems are reported, not repaired. Only a folder can
    be repaired: a zip or a URL is a StoreError.
    """
    path = Path(location)
    if not path.is_dir():
        raise StoreError(f"{location}: --repair works on a store folder; a zip or a URL is "
                         "read-only (export the repaired folder again)")
    problems = verify_store(path)
    bad = sorted({p.clip for p in problems if p.clip is not None})
    if not bad:
        return problems, []
    with open_store(path, require_complete=False) as store:
        kind, listed = store.kind, store.clip_ids
    try:
        with writer.writer_lock(path, kind):
            root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            root.update_attributes({"clips": [c for c in listed if c not in bad],
                                    "complete": False})
            for clip_id in bad:
                group = path / "clips" / clip_id
                if group.is_dir() and not group.is_symlink():
                    shutil.rmtree(group)
    except writer.WriteRefused as error:  # a run is writing it: nothing was changed
        raise StoreError(str(error)) from error
    return problems, bad


def _root_problems(store: Store) -> list[Problem]:
    problems = []
    if store.attrs.get("complete") is not True:
        problems.append(Problem(None, None, "incomplete", f"root attribute complete is "
                                f"{store.attrs.get('complete')!r}: a run did not finish"))
    if store.kind == "faces" and not isinstance(_size(store), int):
        problems.append(Problem(None, None, "params", "params has no integer size"))
    if store.kind == "modalities" and not store.names:
        problems.append(Problem(None, None, "params", "root attribute images is empty"))
    return problems


def _size(store: Store) -> int | None:
    return (store.attrs.get("params") or {}).get("size")


def _clip_problems(store: Store, clip_id: str, sizes: dict[str, int]) -> list[Problem]:
    """Status, content key, provenance, then every array of one clip."""
    try:
        attrs = store.clip_attrs(clip_id)
    except KeyError:
        return [Problem(clip_id, None, "missing", "listed in clips, but its group is absent")]
    except Exception as error:  # malformed zarr.json: report, go on with the other clips
        return [Problem(clip_id, None, "missing", f"group unreadable: {error_text(error)}")]
    problems = [Problem(clip_id, None, code, message)
                for code, message in _attr_problems(store, clip_id, attrs)]
    for name in clip_arrays(store, clip_id):
        problems += [Problem(clip_id, name, code, message)
                     for code, message in _array_problems(store, clip_id, name, attrs, sizes)]
    return problems


def _attr_problems(store: Store, clip_id: str, attrs: dict) -> list[tuple[str, str]]:
    problems = []
    if attrs.get("status") != "ok":
        problems.append(("status", f"status {attrs.get('status')!r}, not 'ok': the clip was "
                                   "not finished"))
    if attrs.get("clip_id") != clip_id:
        problems.append(("attrs", f"clip_id attribute {attrs.get('clip_id')!r} is not the "
                                  "group's name"))
    if store.kind == "modalities" and len(attrs.get("lo") or ()) != len(store.names):
        problems.append(("attrs", f"lo has {len(attrs.get('lo') or ())} entries for "
                                  f"{len(store.names)} images"))
    return problems + _key_problems(store, attrs) + _provenance_problems(store, attrs)


def _key_problems(store: Store, attrs: dict) -> list[tuple[str, str]]:
    """The stored content key against the one recomputed from the clip's own attributes."""
    stored = attrs.get("content_key")
    if not stored:
        return [("content_key", "no content_key")]
    try:
        recomputed = recompute_key(store.kind, attrs)
    except KeyError as error:
        return [("provenance", f"cannot recompute the content key: {error.args[0]}")]
    if recomputed != stored:
        return [("content_key", "the stored content_key is not the one recomputed from the "
                                "clip's attributes and provenance: an attribute was changed "
                                "after the clip was written")]
    return []


def _provenance_problems(store: Store, attrs: dict) -> list[tuple[str, str]]:
    """A complete store's clips were all made with the store's parameters and software."""
    provenance = attrs.get("provenance") or {}
    keys = ("params", "versions") + (("model_sha256",) if store.kind == "faces" else ())
    differ = [k for k in keys if k in provenance and provenance[k] != store.attrs.get(k)]
    if differ:
        return [("provenance", f"provenance {', '.join(differ)} differ from the store's")]
    return []


def _array_problems(store: Store, clip_id: str, name: str, attrs: dict,
                    sizes: dict[str, int]) -> list[tuple[str, str]]:
    """Shape, dtype, data files present, and every chunk read (which checks its crc32c)."""
    try:
        array = store.array(clip_id, name)
    except KeyError:
        return [("missing", "array absent")]
    except StoreError as error:
        return [("refused", str(error))]
    except Exception as error:  # malformed array metadata
        return [("missing", f"array metadata unreadable: {error_text(error)}")]
    problems = []
    expected = _expected_shape(store, name, attrs, array.shape)
    if tuple(array.shape) != expected:
        problems.append(("shape", f"shape {tuple(array.shape)}, expected {expected}"))
    dtype = SPEC[store.kind][name][0]
    if str(array.dtype) != dtype:
        problems.append(("dtype", f"dtype {array.dtype}, expected {dtype}"))
    if name == "images" and len(array.shape) == 4:
        sizes[clip_id] = array.shape[1]
    absent = [key for key in data_keys(array) if not store.exists(key)]
    if absent:
        problems.append(("missing_data", f"data file(s) {', '.join(absent)} absent: they would "
                                         "read as zeros"))
    return problems + _read_problems(array)


def _expected_shape(store: Store, name: str, attrs: dict, shape: tuple) -> tuple:
    """What the layout promises for one array; a modality's image size is checked across
    clips instead (its stage has no size of its own)."""
    if store.kind == "sequences":
        frames = attrs.get("n_frames") if attrs.get("sampling") == "all" else attrs.get("length")
        lead = (attrs.get("phases"), frames)
        size = attrs.get("size")
        steps = frames - 1 if isinstance(frames, int) else None
        return {"frames": (*lead, size, size), "landmarks": (*lead, 68, 2),
                "flow": (lead[0], steps, size, size, 2)}.get(name, lead)
    if name == "frames":
        size = _size(store)
        return (attrs.get("n_frames"), size, size, 3)
    if name == "landmarks":
        return (LANDMARKS, 2)
    size = shape[1] if len(shape) == 4 else None
    return (len(store.names), size, size, 3)


def _read_problems(array: zarr.Array) -> list[tuple[str, str]]:
    """Read the whole array; if that fails, read it image by image to say which are bad."""
    try:
        array[...]
        return []
    except Exception as error:  # crc32c mismatch, zstd error, truncated shard: all corruption
        first = error
    step = array.chunks[0] if array.ndim else 1
    bad = []
    for start in range(0, array.shape[0] if array.ndim else 0, step):
        try:
            array[start:start + step]
        except Exception as error:
            bad.append(start)
            first = error
    if len(bad) > 1 or (bad and array.shape[0] > step):
        where = f"{len(bad)} of {array.shape[0]} images unreadable (positions {_spans(bad)})"
    else:
        where = "unreadable"
    return [("corrupt", f"{where}: {error_text(first)}")]


def _spans(positions: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans, start = [], None
    for i, p in enumerate(positions):
        start = p if start is None else start
        if i + 1 == len(positions) or positions[i + 1] != p + 1:
            spans.append(f"{start}-{p}" if p != start else str(p))
            start = None
    return ", ".join(spans)


def _size_problems(sizes: dict[str, int]) -> list[Problem]:
    """Modality images of every clip share one size: name the clips off the common one."""
    if not sizes:
        return []
    common = Counter(sizes.values()).most_common(1)[0][0]
    return [Problem(clip, "images", "shape", f"images are {s}x{s}, the store's other clips "
                    f"{common}x{common}") for clip, s in sizes.items() if s != common]


def _checksum_problems(store: Store) -> list[Problem]:
    """An exported store (zip, or its unpacked tree) against its SHA256SUMS."""
    try:
        listing = store.raw(CHECKSUMS)
    except StoreError:
        raise  # over the read limits: refused, not read
    except READ_ERRORS as error:
        return [Problem(None, None, "checksum", f"{CHECKSUMS} unreadable: {error_text(error)}")]
    if listing is None:
        return []
    problems = []
    for number, line in enumerate(listing.decode(errors="replace").splitlines(), 1):
        digest, _, key = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not _safe_key(key):
            problems.append(Problem(None, None, "checksum",
                                    f"{CHECKSUMS} line {number} is malformed: {line[:120]!r}"))
            continue
        try:
            data = store.raw(key)
            found = "absent" if data is None else None
        except StoreError:
            raise
        except READ_ERRORS as error:  # a zip member whose bytes fail its CRC, a short read
            data, found = None, f"unreadable ({error_text(error)})"
        if data is not None and hashlib.sha256(data).hexdigest() != digest:
            found = "sha256 differs from the one listed"
        if found:
            clip, array = _owner(key, store.clip_ids)
            problems.append(Problem(clip, array, "checksum", f"{key}: {found} in {CHECKSUMS}"))
    return problems


def _archive_problems(location: str | Path) -> list[Problem]:
    """An exported zip on disk against the archive ``export_store`` writes for its members.

    Export is deterministic, so its zip is a function of its members' names and bytes:
    rebuilt from them it must give the file's bytes exactly. This finds a flipped byte that
    reading the members cannot (in a local header's copy of a size or checksum, a time, a
    directory entry's attributes). Zips that are not ``mesti cache export`` archives, and
    zips read over a URL, are not checked here.
    """
    path = Path(location)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return []
    name = None
    try:
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryFile() as rebuilt:
            names = archive.namelist()
            if MANIFEST not in names and CHECKSUMS not in names:
                return []  # not an export (a store zipped by hand)
            absent = [n for n in (MANIFEST, CHECKSUMS) if n not in names]
            if absent:
                return [Problem(None, None, "archive", f"an exported zip without "
                                f"{', '.join(absent)}: a damaged directory entry?")]
            name = MANIFEST
            manifest = json.loads(archive.read(MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != "mesti store export":
                return []  # a MANIFEST.json of something else
            with zipfile.ZipFile(rebuilt, "w", allowZip64=True) as canonical:
                for name in names:
                    add_member(canonical, name, archive.read(name))
            rebuilt.seek(0)
            with path.open("rb") as original:
                offset = _first_difference(original, rebuilt)
    except READ_ERRORS as error:
        return [Problem(None, None, "archive", f"member {name} unreadable: {error_text(error)}")]
    if offset is None:
        return []
    return [Problem(None, None, "archive", f"byte {offset} of the zip is not the one `mesti "
                    "cache export` writes for its members: a damaged header or directory (or "
                    "the archive was zipped again by another tool)")]


def _first_difference(one, two, block: int = 1 << 20) -> int | None:
    """The offset of the first byte where two files differ (or one ends); None if equal."""
    offset = 0
    while True:
        a, b = one.read(block), two.read(block)
        if a != b:
            return offset + next((i for i, (x, y) in enumerate(zip(a, b, strict=False))
                                  if x != y),
                                 min(len(a), len(b)))
        if not a:
            return None
        offset += len(a)


def _consolidated_problems(store: Store) -> list[Problem]:
    """The root's consolidated metadata (written by ``finalise``) against each node's own
    zarr.json: readers take clip attributes and array metadata from the copy, so a copy that
    lacks a listed clip or array, or differs from a file, is reported. A store without a copy
    (written before it existed) has nothing to check."""
    try:
        copy = json.loads(store.raw("zarr.json") or b"{}").get("consolidated_metadata")
    except ValueError as error:
        return [Problem(None, None, "consolidated", f"root zarr.json unreadable: {error}")]
    if copy is None:
        return []
    entries = copy.get("metadata") if isinstance(copy, dict) else None
    if not isinstance(entries, dict):
        return [Problem(None, None, "consolidated", "the root's consolidated_metadata is "
                                                    "not a mapping of node metadata")]
    problems = []
    expected = ["clips", *(f"clips/{c}" for c in store.clip_ids),
                *(f"clips/{c}/{a}" for c in store.clip_ids for a in clip_arrays(store, c))]
    for key in expected:
        if key not in entries:
            clip, array = _owner(f"{key}/zarr.json", store.clip_ids)
            problems.append(Problem(clip, array, "consolidated", f"{key} is absent from the "
                                    "root's consolidated metadata"))
    for key, entry in entries.items():
        clip, array = _owner(f"{key}/zarr.json", store.clip_ids)
        if not _safe_key(key):
            problems.append(Problem(None, None, "consolidated", f"consolidated metadata "
                                    f"names {key[:120]!r}, not a key of the store"))
            continue
        data = store.raw(f"{key}/zarr.json")
        try:
            own = None if data is None else json.loads(data)
        except ValueError:
            own = None
        if not isinstance(own, dict):
            problems.append(Problem(clip, array, "consolidated", f"{key}/zarr.json is absent "
                                    "or unreadable, yet the root's consolidated metadata "
                                    "describes it"))
        elif _node(own) != _node(entry):
            problems.append(Problem(clip, array, "consolidated", f"{key}/zarr.json differs "
                                    "from its copy in the root's consolidated metadata, "
                                    "which readers use"))
    return problems


def _node(document: object) -> object:
    """A node's metadata as compared: a group's own consolidated marker left out."""
    if not isinstance(document, dict):
        return document
    return {k: v for k, v in document.items() if k != "consolidated_metadata"}


def _safe_key(key: str) -> bool:
    """A relative key of safe components: an archive's listing must not point outside it."""
    return bool(key) and all(_SAFE_COMPONENT.fullmatch(c) and c not in (".", "..")
                             for c in key.split("/"))


def _owner(key: str, clip_ids: list[str]) -> tuple[str | None, str | None]:
    """The clip and array a store key belongs to (None where it is the store's own)."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "clips" and parts[1] in clip_ids:
        return parts[1], parts[2] if len(parts) > 3 else None
    return None, None
