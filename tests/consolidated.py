"""Editing a store's metadata by hand, as someone who edits a finalised store must: a node's
zarr.json and its copy in the root's consolidated metadata (what readers use) together."""

import json
from pathlib import Path


def _root_document(metadata: Path) -> tuple[Path, str, dict]:
    """The store root above the node document ``metadata``, the node's key in the
    consolidated metadata and the root's zarr.json."""
    node = root = metadata.parent
    while not (root / "clips").is_dir() or root.name == "clips":
        if root == root.parent:
            raise ValueError(f"{metadata} is not inside a store")
        root = root.parent
    return root, node.relative_to(root).as_posix(), json.loads((root / "zarr.json").read_text())


def mirror(metadata: Path) -> None:
    """Copy the node document at ``metadata`` (``<store>/clips/.../zarr.json``) into its
    store's consolidated metadata, so readers see the edit as verify does."""
    root, key, document = _root_document(metadata)
    entries = document.get("consolidated_metadata", {}).get("metadata")
    if entries is None or key == ".":
        return
    entries[key] = {**json.loads(metadata.read_text()),
                    **({"consolidated_metadata": entries[key]["consolidated_metadata"]}
                       if "consolidated_metadata" in entries.get(key, {}) else {})}
    (root / "zarr.json").write_text(json.dumps(document))


def forget(metadata: Path) -> None:
    """Remove the node at ``metadata`` and its children from the store's consolidated
    metadata, as when the node's zarr.json is deleted from a finalised store by hand."""
    root, key, document = _root_document(metadata)
    entries = document.get("consolidated_metadata", {}).get("metadata")
    if entries is None:
        return
    for name in [k for k in entries if k == key or k.startswith(f"{key}/")]:
        del entries[name]
    (root / "zarr.json").write_text(json.dumps(document))
