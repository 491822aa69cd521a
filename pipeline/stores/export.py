"""``mesti cache export``: a store as one zip file another lab can download and read in place
(the layout is in cache/README.md): the store tree at the zip's root, chunk files stored
without zip compression (a stored member can be read by byte range, one image at a time),
``MANIFEST.json`` (what the archive holds and its provenance) and ``SHA256SUMS`` (the sha256
of every other member, in ``sha256sum -c`` format), which ``verify_store`` checks too.
The store is verified first, so an archive's checksums never vouch for a corrupt chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

from . import write as writer
from .archive import CHECKSUMS, EXPORT_VERSION, MANIFEST, add_member, clip_arrays, open_checked
from .read import Store, StoreError
from .verify import verify_store
from .write import data_keys


def export_store(location: str | Path, out: Path, *, check: bool = True) -> dict:
    """Write the store at ``location`` as one zip file ``out``; return its MANIFEST.json.

    With ``check`` the store is verified first and refused if it has any problem, so an
    archive's checksums never vouch for a corrupt chunk. The zip is written beside ``out``
    and renamed into place, so ``out`` is never a half-written archive.
    """
    if check:
        problems = verify_store(location)
        if problems:
            raise StoreError(f"{location}: {len(problems)} problem(s), nothing exported; "
                             f"`mesti cache verify` lists them (first: {problems[0]})")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    with open_checked(location) as store:
        keys = store_keys(store)
        try:
            manifest = _write_zip(store, keys, partial)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def store_keys(store: Store) -> list[str]:
    """Every key of the store's listed clips, found from the layout rather than by listing
    (HTTP cannot list): group and array metadata, and the data files that exist."""
    keys = ["zarr.json", "clips/zarr.json"]
    for clip_id in store.clip_ids:
        keys.append(f"clips/{clip_id}/zarr.json")
        for name in clip_arrays(store, clip_id):
            array = store.array(clip_id, name)
            keys.append(f"{array.path}/zarr.json")
            keys += [k for k in data_keys(array) if store.exists(k)]
    return keys


def _write_zip(store: Store, keys: list[str], path: Path) -> dict:
    """The store's bytes as they are, then MANIFEST.json, then SHA256SUMS over both."""
    sums, total = [], 0
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        for key in keys:
            data = store.raw(key)
            if data is None:
                raise StoreError(f"{store.location}: {key} vanished while exporting")
            add_member(archive, key, data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {key}")
            total += len(data)
        manifest = _manifest(store, len(keys), total)
        text = (json.dumps(manifest, indent=2) + "\n").encode()
        add_member(archive, MANIFEST, text)
        sums.append(f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}")
        add_member(archive, CHECKSUMS, ("\n".join(sums) + "\n").encode())
    return manifest


def _manifest(store: Store, files: int, size: int) -> dict:
    attrs = store.attrs
    provenance = {k: attrs[k] for k in ("params", "versions", "model_sha256") if k in attrs}
    manifest = {
        "format": "mesti store export", "export_version": EXPORT_VERSION,
        "store_layout": attrs["mesti_store"], "kind": store.kind,
        "dataset": attrs.get("dataset"), "licence": attrs.get("licence"),
        "clips": store.clip_ids,
        "failures": len(attrs.get("failures") or []), "provenance": provenance,
        "store_files": files, "store_bytes": size, "checksums": CHECKSUMS,
        "exported_with": writer.versions(),
    }
    if store.kind == "modalities":
        manifest["images"] = store.names
    return manifest
