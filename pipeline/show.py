"""A figure for a human: a clip's onset, apex and offset crops beside its pooled images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .reader import open_store

LABELS = {"mesti": "MESTI", "mesti_proximity": "MESTI (proximity)",
          "dynamic_raw": "dynamic image", "dynamic_tvm": "dynamic image (TVM)",
          "apex_frame": "apex frame"}


def show_clip(modalities: str | Path, clip_id: str, out: Path, faces: str | Path | None = None,
              images: tuple[str, ...] = ("mesti", "dynamic_raw")) -> Path:
    """Write a PNG: onset, apex and offset crops, then the named pooled images."""
    pooled = open_store(modalities)
    faces_store = open_store(faces or pooled.attrs["source"])
    frames = faces_store.frames(clip_id)
    attrs = pooled.clip_attrs(clip_id)
    a = attrs["apex_index"]
    numbers = attrs["frame_numbers"]
    tiles = [(frames[0], f"onset {numbers[0]}"),
             (frames[a], f"apex {numbers[a]} ({attrs['apex_policy_used']})"),
             (frames[-1], f"offset {numbers[-1]}")]
    tiles += [(pooled.image(clip_id, name), LABELS.get(name, name)) for name in images
              if name in pooled.names]
    size = frames.shape[1]
    canvas = np.full((size + 56, len(tiles) * (size + 8) + 8, 3), 255, np.uint8)
    for i, (image, label) in enumerate(tiles):
        x = 8 + i * (size + 8)
        canvas[48:48 + size, x:x + size] = image
        cv2.putText(canvas, label, (x, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    title = f"{clip_id}  {attrs['emotion']}  ({attrs['label3'] or '-'})"
    cv2.putText(canvas, title, (8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}")
    return out
