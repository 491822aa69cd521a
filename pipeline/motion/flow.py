"""Dual TV-L1 optical flow, optical strain, and their 8-bit views.

Flow: Zach, Pock and Bischof, "A Duality Based Approach for Realtime TV-L1 Optical Flow"
(DAGM 2007), in OpenCV's implementation (opencv-contrib ``optflow``), with OpenCV's default
parameters, which are what STSTNet (Liong et al. 2019), OFF-ApexNet (Gan et al. 2019), MEAN
and MOL feed their networks. Optical strain (Liong et al.; Shreve et al. 2011) is the
magnitude of the infinitesimal strain tensor of the flow field,
|e| = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2), with central differences (one-sided at
the border). STSTNet's printed equation has a typo and MEB's code swaps the Sobel axes and
squares the shear terms separately; neither is copied.

Two 8-bit scalings: ``minmax`` per image (what the peers do; loses the zero-flow level and
the absolute magnitude) and ``fixed`` (clip at +-m pixels, zero at grey 127.5), which keeps
both. Either way the image's ``lo``/``hi`` recover the float field: lo + (hi - lo) * q / 255.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

SCALINGS = ("minmax", "fixed")


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV's DualTVL1OpticalFlow parameters; the defaults are OpenCV's (and the peers')."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5


def tvl1_flow(first: np.ndarray, second: np.ndarray,
              params: TVL1Params = TVL1Params()) -> np.ndarray:
    """Flow (H, W, 2) float32 (u = x, v = y, pixels) taking grey uint8 ``first`` to ``second``.

    first(x, y) ~ second(x + u, y + v).
    """
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"two grey images of one shape expected, got {first.shape} and "
                         f"{second.shape}")
    p = asdict(params)
    solver = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p["tau"], lambda_=p["lambda_"], theta=p["theta"], nscales=p["nscales"],
        warps=p["warps"], epsilon=p["epsilon"], innnerIterations=p["inner_iterations"],
        outerIterations=p["outer_iterations"], scaleStep=p["scale_step"], gamma=p["gamma"],
        medianFiltering=p["median_filtering"])
    return solver.calc(np.ascontiguousarray(first), np.ascontiguousarray(second), None)


def strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude (H, W) float32 of a flow field (H, W, 2), central differences."""
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    u_y, u_x = np.gradient(u)   # axis 0 is y, axis 1 is x
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def to_uint8(image: np.ndarray, scaling: str = "minmax", bound: float = 2.0,
             signed: bool = True) -> tuple[np.ndarray, float, float]:
    """An 8-bit view of a float field and the ``lo``, ``hi`` that recover it.

    ``minmax``: lo, hi are the image's minimum and maximum (a flat image maps to grey 128
    with lo = hi). ``fixed``: lo, hi = -bound, +bound for a signed field (zero flow at
    127.5, stored as 128) and 0, bound for a non-negative one (``signed=False``: strain);
    values outside are clipped.
    """
    image = np.asarray(image, np.float32)
    if scaling == "minmax":
        lo, hi = float(image.min()), float(image.max())
        if hi - lo <= 0:
            return np.full(image.shape, 128, np.uint8), lo, hi
    elif scaling == "fixed":
        if bound <= 0:
            raise ValueError(f"the fixed scale needs a positive bound, got {bound}")
        lo, hi = (-float(bound), float(bound)) if signed else (0.0, float(bound))
    else:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    scaled = (np.clip(image, lo, hi) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8), lo, hi


def from_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The float field back from its 8-bit view (up to quantisation and clipping)."""
    if hi == lo:
        return np.full(image.shape, lo, np.float32)
    return np.float32(lo) + np.float32(hi - lo) * image.astype(np.float32) / np.float32(255)


def colour_wheel(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """RGB uint8 view of a flow field: hue is the direction, saturation the magnitude.

    Direction follows the Middlebury convention (hue 0 = flow to the right, turning through
    down); magnitude is scaled by ``max_magnitude`` (the field's maximum by default), so
    zero flow is white and the largest flow fully saturated.
    """
    u, v = flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    magnitude, angle = cv2.cartToPolar(u, v, angleInDegrees=True)
    top = float(magnitude.max()) if max_magnitude is None else float(max_magnitude)
    hsv = np.empty((*u.shape, 3), np.uint8)
    hsv[..., 0] = np.rint(angle / 2).astype(np.uint8) % 180   # OpenCV hue runs 0..179
    hsv[..., 1] = np.rint(np.clip(magnitude / top, 0, 1) * 255) if top > 0 else 0
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
