"""``mesti cache info``: what a store holds (kind, clips, arrays, provenance, licence), as a
dict and as the text the command prints. Reads a directory, a zip file or a URL.
"""

from __future__ import annotations

from pathlib import Path

from .archive import clip_arrays, error_text, open_checked
from .read import Store


def store_info(location: str | Path) -> dict:
    """What a store holds: kind, dataset, completeness, provenance, and each clip's arrays
    with their shapes and dtypes. Reads metadata only, never a chunk."""
    with open_checked(location, require_complete=False) as store:
        attrs = store.attrs
        info = {
            "location": str(location), "kind": store.kind, "layout": attrs["mesti_store"],
            "dataset": attrs.get("dataset"), "source": attrs.get("source"),
            "licence": attrs.get("licence"),
            "complete": attrs.get("complete") is True, "n_clips": len(store.clip_ids),
            "failures": len(attrs.get("failures") or []),
            "params": attrs.get("params"), "versions": attrs.get("versions"),
        }
        if store.kind == "faces":
            info["model_sha256"] = attrs.get("model_sha256")
        else:
            info["images"] = store.names
        info["clips"] = [_clip_info(store, c) for c in store.clip_ids]
    return info


def _clip_info(store: Store, clip_id: str) -> dict:
    row: dict = {"clip_id": clip_id}
    try:
        attrs = store.clip_attrs(clip_id)
        row.update({k: attrs.get(k) for k in ("subject", "label3", "n_frames", "status")})
        row["arrays"] = {}
        for name in clip_arrays(store, clip_id):
            array = store.array(clip_id, name)
            row["arrays"][name] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    except Exception as error:  # info describes what it can; verify says what is wrong
        row["error"] = error_text(error)
    return row


def format_info(info: dict) -> str:
    """``store_info``'s answer as a few aligned lines for a terminal."""
    lines = [f"{info['kind']} store {info['location']} (layout {info['layout']})",
             f"  dataset    {info['dataset']}",
             *_licence_lines(info.get("licence")),
             f"  complete   {'yes' if info['complete'] else 'NO: a run did not finish'}",
             f"  clips      {info['n_clips']} ({info['failures']} failed and left out)"]
    if "images" in info:
        lines.append(f"  images     {', '.join(info['images'])}")
    params = info.get("params") or {}
    lines.append("  params     " + " ".join(f"{k}={v}" for k, v in params.items()))
    versions = info.get("versions") or {}
    lines.append("  versions   " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if info.get("model_sha256"):
        lines.append(f"  model      sha256 {info['model_sha256']}")
    lines.append("")
    width = max([len(c["clip_id"]) for c in info["clips"]] + [4])
    for clip in info["clips"]:
        arrays = clip.get("arrays", {})
        shapes = "  ".join(f"{name} {'x'.join(map(str, a['shape']))} {a['dtype']}"
                           for name, a in arrays.items())
        detail = clip["error"] if "error" in clip else \
            f"{clip.get('subject')}  {clip.get('label3')}  {shapes}"
        lines.append(f"  {clip['clip_id']:<{width}}  {detail}")
    return "\n".join(lines)


def _licence_lines(licence: dict | None) -> list[str]:
    """What a receiving lab may do with the store: the source dataset's name, terms and
    citation (a store from before licences were recorded says so)."""
    if not licence:
        return ["  licence    not recorded: ask whoever made this store before using it"]
    lines = [f"  source     {licence.get('name')}", f"  licence    {licence.get('terms')}"]
    if licence.get("citation"):
        lines.append(f"  cite       {licence['citation']}")
    return lines
