"""Numba kernels: the weighted sum of a clip's frames, and its uint8 view.

The inner loop runs over one contiguous row (width x channels) so it vectorises; indexing
pixels in 2-D inside Numba does not, and is about ten times slower (docs/design.md section 6).
Kernels are single-threaded: parallelism comes from running clips side by side.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _weighted_rows(frames: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    n, height, width = frames.shape
    out[:] = 0.0
    for t in range(n):
        w = weights[t]
        if w == 0.0:
            continue
        for i in range(height):
            src = frames[t, i]
            dst = out[i]
            for j in range(width):
                dst[j] += w * src[j]


def weighted_sum(frames: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_t weights[t] * frames[t] as float32, for uint8 frames of shape (T, H, W, C)."""
    frames = np.ascontiguousarray(frames)
    n, height, width, channels = frames.shape
    if weights.shape != (n,):
        raise ValueError(f"{weights.shape[0]} weights for {n} frames")
    out = np.empty((height, width * channels), np.float32)
    _weighted_rows(frames.reshape(n, height, width * channels), weights.astype(np.float32), out)
    return out.reshape(height, width, channels)


def flat_tolerance(weights: np.ndarray) -> float:
    """A range below which a pooled uint8 image is numerically flat.

    float32 accumulation of T terms errs by about T * 6e-8 of sum |w| * 255; a still clip's
    pooled image is zero only up to that, and min-max would blow the round-off up to noise.
    """
    return 1e-5 * float(np.abs(weights).sum()) * 255.0


def to_uint8(image: np.ndarray, flat_below: float = 0.0) -> tuple[np.ndarray, float, float]:
    """Min-max over all channels to 0..255, with (lo, hi) to recover the float image.

    A flat image (range at most ``flat_below``, e.g. a still clip's zero image) maps to
    mid-grey 128. Recovery: ``lo + (hi - lo) * u / 255``.
    """
    lo, hi = float(image.min()), float(image.max())
    if not hi - lo > flat_below:
        return np.full(image.shape, 128, np.uint8), lo, hi
    scaled = (image - lo) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), lo, hi
