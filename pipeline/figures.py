"""A figure for a human: a clip's pooled images with their value scales, and, when its faces
store is at hand, the onset, apex and offset crops and the apex-minus-onset difference.

Figures are drawn with matplotlib's object API (no pyplot state, no display needed) and
written as PNG, or PDF or SVG by the output's extension; the PDF and SVG carry no creation
date, so the same clip gives the same file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .motion.flow import colour_wheel
from .stores.read import Store, StoreError, open_store

LABELS = {"mesti": "MESTI", "mesti_proximity": "MESTI (proximity)",
          "dynamic_raw": "dynamic image", "dynamic_tvm": "dynamic image (TVM)",
          "apex_frame": "apex frame", "flow_u": "flow u (onset to apex)",
          "flow_v": "flow v (onset to apex)", "strain": "optical strain",
          "flow_uvs": "flow, onset to apex",
          "flow_uvs_offset": "flow, apex to offset",
          "active_image": "active image"}
STORE_HOLDS = {"faces": "aligned face frames", "sequences": "sampled frame sequences"}
FLOW_SCALE = "flow magnitude, pixels (hue: direction)"
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
# date-free metadata and fixed SVG element ids, so a figure is byte-identical run to run
_METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
_FIXED = {"svg.hashsalt": "mesti", "pdf.compression": 6}


def save_figure(figure: Figure, out: Path, dpi: int = 150) -> Path:
    """Write ``figure`` as PNG, PDF or SVG, chosen by ``out``'s extension."""
    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ValueError(f"{out}: figures are written as {', '.join(FORMATS)} (by extension)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(_FIXED):
        figure.savefig(out, format=kind, dpi=dpi, bbox_inches="tight",
                       metadata=_METADATA[kind])
    return out


def find_faces(pooled: Store, faces: str | Path | None,
               clip_id: str | None = None) -> tuple[Store | None, str | None]:
    """The faces store a modality store was made from, and a note when it is not at hand.

    ``faces`` given: it must open (an error says why it did not). Not given: the recorded
    ``source`` as written, then a store of that name beside the modality store (a received
    pair of stores); neither found draws the pooled images alone, with a note saying so.
    With ``clip_id``, a store counts only if it holds the very faces clip the pooled clip
    was made from (same content key): a relative ``source`` may name another store here.
    """
    wanted = pooled.clip_attrs(clip_id).get("faces_key") if clip_id else None

    def made_from(store: Store) -> bool:
        return wanted is None or (clip_id in store.clip_ids and
                                  store.clip_attrs(clip_id).get("content_key") == wanted)

    if faces is not None:
        try:
            store = open_store(faces)
        except StoreError as error:
            raise StoreError(f"--faces {faces}: {error}") from error
        if not made_from(store):
            raise StoreError(f"--faces {faces}: holds no faces clip {clip_id!r} with the "
                             "content key the pooled clip was made from")
        return store, None
    source = str(pooled.attrs.get("source", ""))
    candidates = _faces_candidates(pooled.location, source)
    for candidate in candidates:
        try:
            store = open_store(candidate)
        except StoreError:
            continue
        if made_from(store):
            return store, None
        store.close()
    return None, (f"faces store {source or '(none recorded)'} not found (tried "
                  f"{', '.join(candidates) or 'nothing'}): drew the pooled images only; "
                  "give --faces STORE to draw the onset, apex and offset crops")


def _faces_candidates(location: str, source: str) -> list[str]:
    """Where a modality store's faces store may be: its recorded ``source`` as written,
    relative to the store's folder, and beside the store under the same name, as a folder
    or as an exported zip (a received pair of stores, a zip or a URL among them)."""
    if not source:
        return []
    name = source.rstrip("/").rsplit("/", 1)[-1]
    stem = name[:-len(".zip")] if name.endswith(".zip") else name.removesuffix(".zarr")
    beside_names = [name, f"{stem}.zip", f"{stem}.zarr.zip"]
    if "://" in location or "::" in location:
        folder = location.split("?")[0].rsplit("/", 1)[0]
        found = [source, *(f"{folder}/{n}" for n in beside_names)]
    else:
        folder = Path(location).parent
        relative = [] if Path(source).is_absolute() else [source]
        found = [source, *(str(folder / n) for n in [*relative, *beside_names])]
    return list(dict.fromkeys(found))


def clip_figure(pooled: Store, clip_id: str, images: tuple[str, ...],
                faces: Store | None) -> Figure:
    """The figure of one clip: crops and difference (with ``faces``), then pooled images."""
    unknown = [name for name in images if name not in pooled.names]
    if unknown:
        raise ValueError(f"{pooled.location}: no image {', '.join(map(repr, unknown))}; "
                         f"the store has {', '.join(pooled.names)}")
    if not images:
        raise ValueError(f"no image named; the store has {', '.join(pooled.names)}")
    attrs = pooled.clip_attrs(clip_id)
    crops = faces is not None
    columns = max(len(images), 4 if crops else 0)
    figure = Figure(figsize=(2.6 * columns, 2.9 * (2 if crops else 1)), layout="constrained")
    grid = figure.add_gridspec(2 if crops else 1, columns)
    if crops:
        _crops(figure, grid, faces.frames(clip_id), attrs)
    for column, name in enumerate(images):
        _pooled(figure, figure.add_subplot(grid[1 if crops else 0, column]), pooled, clip_id,
                name)
    figure.suptitle(f"{attrs.get('dataset')} {attrs.get('subject')} {clip_id}: "
                    f"{attrs.get('emotion')} ({attrs.get('label3') or 'no 3-class label'}); "
                    f"AUs {attrs.get('action_units') or '-'}")
    return figure


def _crops(figure: Figure, grid, frames: np.ndarray, attrs: dict) -> None:
    a = attrs["apex_index"]
    numbers = attrs["frame_numbers"]
    tiles = [(frames[0], f"onset, frame {numbers[0]}"),
             (frames[a], f"apex, frame {numbers[a]} ({attrs['apex_policy_used']})"),
             (frames[-1], f"offset, frame {numbers[-1]}")]
    for column, (image, title) in enumerate(tiles):
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(image)
        _bare(axes, title)
    difference = frames[a].astype(np.float32).mean(-1) - frames[0].astype(np.float32).mean(-1)
    span = max(float(np.abs(difference).max()), 1.0)
    axes = figure.add_subplot(grid[0, 3])
    shown = axes.imshow(difference, cmap="RdBu_r", vmin=-span, vmax=span)
    _bare(axes, "apex - onset")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="grey levels")


def _pooled(figure: Figure, axes, pooled: Store, clip_id: str, name: str) -> None:
    """A pooled image as stored, with a scale from its 8-bit levels to pooled values."""
    position = pooled.names.index(name)
    attrs = pooled.clip_attrs(clip_id)
    lo, hi = attrs["lo"][position], attrs["hi"][position]
    if isinstance(lo, list):  # a (u, v, strain) image: its flow drawn as a colour wheel
        field = pooled.float_image(clip_id, name)
        top = float(np.hypot(field[..., 0], field[..., 1]).max())
        axes.imshow(colour_wheel(field[..., :2], top or None))
        _bare(axes, LABELS.get(name, name))
        scale = ScalarMappable(Normalize(0.0, top or 1.0), cmap="Greys")
        figure.colorbar(scale, ax=axes, shrink=0.8, label=FLOW_SCALE)
        return
    axes.imshow(pooled.image(clip_id, name))
    _bare(axes, LABELS.get(name, name))
    if lo is None:  # stored as is: the scale is pixel values
        lo, hi, label = 0.0, 255.0, "pixel value"
    else:
        label = "pooled value" if hi > lo else "pooled value (flat image)"
        hi = hi if hi > lo else lo + 1e-6
    scale = ScalarMappable(Normalize(lo, hi), cmap="gray")
    figure.colorbar(scale, ax=axes, shrink=0.8, label=label)


def _bare(axes, title: str) -> None:
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])


def show_clip(modalities: str | Path, clip_id: str, out: Path, faces: str | Path | None = None,
              images: tuple[str, ...] = ("mesti", "dynamic_raw")) -> tuple[Path, str | None]:
    """Write a clip's figure to ``out`` (PNG, PDF or SVG); the path and a note when the faces
    store was not found and the crops were left out."""
    with open_store(modalities) as pooled:
        if pooled.kind != "modalities":
            raise StoreError(f"{modalities}: is a {pooled.kind} store (it holds "
                             f"{STORE_HOLDS.get(pooled.kind, 'no pooled images')}); mesti show "
                             "draws a clip of a modality store (give the faces store with "
                             "--faces)")
        if clip_id not in pooled.clip_ids:
            raise ValueError(f"{modalities}: no clip {clip_id!r}")
        faces_store, note = find_faces(pooled, faces, clip_id)
        try:
            figure = clip_figure(pooled, clip_id, tuple(images), faces_store)
        finally:
            if faces_store is not None:
                faces_store.close()
    return save_figure(figure, out), note
