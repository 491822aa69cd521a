"""The motion images of a modality store: flow, strain and the active image of one clip.

STSTNet (Liong et al. 2019) and OFF-ApexNet (Gan et al. 2019) feed the onset->apex flow
(u, v) and its optical strain; apex->offset is the same pair for the relaxing half. Flow is
computed on grey crops resized to ``flow_size`` (the peers use 128 or smaller), then the
fields are resized bilinearly to the store's side; values stay in pixels of the
``flow_size`` crop. Each image is stored as three equal channels except ``flow_uvs``, the
three-channel (u, v, strain) image, whose ``lo``/``hi`` are lists with one entry per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .active import active_image
from .flow import TVL1Params, strain, to_uint8, tvl1_flow

FLOW_NAMES = ("flow_u", "flow_v", "strain", "flow_uvs")
MOTION_IMAGES = (*FLOW_NAMES, *(f"{n}_offset" for n in FLOW_NAMES), "active_image")


@dataclass(frozen=True)
class FlowImages:
    """How flow becomes images (the modalities stage's flow knobs)."""

    size: int = 128               # side of the grey crops the flow runs on
    scaling: str = "minmax"       # minmax (the peers) | fixed (keeps zero flow and magnitude)
    flow_bound: float = 2.0       # fixed scale: u, v clipped at +-flow_bound pixels
    strain_bound: float = 0.5     # fixed scale: strain clipped at strain_bound
    tvl1: TVL1Params = field(default_factory=TVL1Params)


def grey(frames: np.ndarray, size: int | None = None) -> np.ndarray:
    """Luma (T, size, size) uint8 of RGB frames (T, S, S, 3), resized by area when asked."""
    out = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    if size is not None and size != frames.shape[1]:
        out = [cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for g in out]
    return np.stack(out)


def motion_images(frames: np.ndarray, apex: int, names: tuple[str, ...],
                  config: FlowImages = FlowImages()) -> list[tuple[np.ndarray, object, object]]:
    """(image (S, S, 3) uint8, lo, hi) for each name of ``names`` (MOTION_IMAGES), in order."""
    unknown = set(names) - set(MOTION_IMAGES)
    if unknown:
        raise ValueError(f"unknown motion images {sorted(unknown)}; known: {MOTION_IMAGES}")
    side = frames.shape[1]
    fields: dict[str, np.ndarray] = {}
    small = grey(frames, config.size) if any(n != "active_image" for n in names) else None
    for suffix, (a, b) in (("", (0, apex)), ("_offset", (apex, len(frames) - 1))):
        if not any(n.endswith(suffix) and n[: len(n) - len(suffix)] in FLOW_NAMES
                   for n in names if n != "active_image"):
            continue
        flow = tvl1_flow(small[a], small[b], config.tvl1)
        for key, values in (("flow_u", flow[..., 0]), ("flow_v", flow[..., 1]),
                            ("strain", strain(flow))):
            fields[key + suffix] = cv2.resize(values, (side, side),
                                              interpolation=cv2.INTER_LINEAR)
    out = []
    for name in names:
        if name == "active_image":
            image = active_image(grey(frames))
            q, lo, hi = to_uint8(image, "minmax")
            out.append((np.repeat(q[..., None], 3, -1), lo, hi))
        elif name.startswith("flow_uvs"):
            suffix = name[len("flow_uvs"):]
            channels = [_scaled(fields[k + suffix], k, config) for k in FLOW_NAMES[:3]]
            out.append((np.stack([c[0] for c in channels], -1),
                        [c[1] for c in channels], [c[2] for c in channels]))
        else:
            key = name[: -len("_offset")] if name.endswith("_offset") else name
            q, lo, hi = _scaled(fields[name], key, config)
            out.append((np.repeat(q[..., None], 3, -1), lo, hi))
    return out


def _scaled(field: np.ndarray, key: str, config: FlowImages) -> tuple[np.ndarray, float, float]:
    if key == "strain":
        return to_uint8(field, config.scaling, config.strain_bound, signed=False)
    return to_uint8(field, config.scaling, config.flow_bound, signed=True)
