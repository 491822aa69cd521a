"""Writing zarr v3 stores: metadata first, then each clip its own group, marked last.

Layout (the spec is cache/README.md): a root group whose attributes carry the stage, its
parameters and ``complete``; ``clips/<clip_id>`` groups, one per clip, each with its arrays
(one data file per array: a whole-clip chunk, or image chunks inside one shard) and the
clip's manifest fields, provenance and content key in its attributes.

Crash safety: a clip's group is rewritten whole, and its ``status`` becomes "ok" (with its
``content_key``) only after its arrays are written; ``complete`` is set only after every
clip was checked. Parallel writers never share a chunk or a shard: each owns a clip group.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from .reader import LAYOUT_VERSION, MANIFEST_FIELDS

# Equalised face crops are sensor noise at the pixel level: zstd shrinks them by 1.2x for
# 3.4x the write time, so faces are stored with checksums only. Pooled images are mostly
# flat and compress well.
CHECKSUM_ONLY = (Crc32cCodec(),)
COMPRESSED = (ZstdCodec(level=3), Crc32cCodec())


def content_key(payload: dict) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# A faces clip carries MANIFEST_FIELDS (defined with the reader's index); a modality clip
# copies every one of them from its faces clip, and the window length.
MODALITY_FIELDS = (*MANIFEST_FIELDS, "n_frames")


def faces_key(clip: dict, params: dict, versions: dict, model_sha256: str,
              input_sha256: str) -> str:
    """A faces clip's key: its manifest fields, the stage's knobs, the software, its input."""
    return content_key({"stage": "faces", "clip": clip, "params": params, "versions": versions,
                        "model_sha256": model_sha256, "input": input_sha256})


def modalities_key(faces_key: str, clip: dict, params: dict, versions: dict) -> str:
    """A modality clip's key: the faces clip it was computed from, the fields it copies
    from it (so a label edited in the store no longer matches), the knobs, the software."""
    return content_key({"stage": "modalities", "faces_key": faces_key, "clip": clip,
                        "params": params, "versions": versions})


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


def open_for_writing(path: Path, kind: str, attrs: dict) -> zarr.Group:
    """Create the store (or reopen it for an incremental run), marked incomplete."""
    root = zarr.open_group(str(path), mode="a", use_consolidated=False)
    old_kind = root.attrs.get("kind")
    if old_kind not in (None, kind):
        raise ValueError(f"{path} is a {old_kind} store, not a {kind} store")
    # update_attributes writes zarr.json once; attrs.update rewrites it for every key
    root.update_attributes({**attrs, "mesti_store": LAYOUT_VERSION, "kind": kind,
                            "complete": False})
    root.require_group("clips")
    return root


def existing_key(path: Path, clip_id: str) -> str | None:
    """The content key of a finished clip in the store, or None."""
    try:
        group = zarr.open_group(str(path), path=f"clips/{clip_id}", mode="r",
                                use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    attrs = group.attrs
    return attrs.get("content_key") if attrs.get("status") == "ok" else None


def write_clip(path: Path, clip_id: str, arrays: dict[str, np.ndarray], attrs: dict,
               key: str, per_image: tuple[str, ...] = (), compress: bool = True) -> None:
    """Write one clip's arrays, then mark it finished with its content key.

    Arrays named in ``per_image`` hold one image (first axis) per chunk inside one shard,
    for readers that want one image of many clips (the trainer reads one modality).
    The others are one chunk: a faces clip is read whole, and whole-chunk reads are six
    times faster than assembling 60 image chunks (writes a third faster).
    """
    group = zarr.create_group(str(path), path=f"clips/{clip_id}", overwrite=True,
                              attributes={"status": "writing"})
    for name, data in arrays.items():
        chunks = (1, *data.shape[1:]) if name in per_image else data.shape
        group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                           shards=data.shape if name in per_image else None,
                           compressors=COMPRESSED if compress else CHECKSUM_ONLY,
                           fill_value=0)[...] = data
    group.update_attributes({**attrs, "content_key": key, "status": "ok"})


def finalise(path: Path, keep: list[str], attrs: dict) -> list[str]:
    """Drop clips not in ``keep``, check every kept clip, mark the store complete.

    Returns the clip ids that failed the check (they are left out of ``clips``).
    """
    root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    clips_dir = Path(path) / "clips"
    present = [p.name for p in clips_dir.iterdir() if p.is_dir()] if clips_dir.is_dir() else []
    for stale in sorted(set(present) - set(keep)):
        shutil.rmtree(clips_dir / stale)
    good = [c for c in keep if existing_key(path, c) is not None]
    root.update_attributes({**attrs, "clips": good, "complete": True})
    return sorted(set(keep) - set(good))
