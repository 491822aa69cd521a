"""Approximate rank pooling weights: one closed form per ranking relation.

Approximate rank pooling (Bilen, Fernando, Gavves, Vedaldi, Gould, "Dynamic Image
Networks for Action Recognition", CVPR 2016) turns frames x_1..x_T into one image
sum_t alpha_t x_t, where alpha_t counts, over every ordered pair of the ranking relation,
+1 when frame t is the one ranked higher and -1 when it is ranked lower. The relations:

- ``dynamic_raw``: later frames rank higher.
- ``dynamic_tvm``: the same relation on the time-varying means psi_t = mean(x_1..x_t), as in
  Bilen's released code, expanded back onto the frames.
- ``mesti`` (MESTI, Nguyen et al. 2025, arXiv 2509.00056; our reading of its two-range
  derivation): inside onset..apex later ranks higher, inside apex..offset earlier ranks
  higher, pairs across the apex are not compared. With a = T it is ``dynamic_raw``.
- ``mesti_proximity``: of any two frames, the one nearer the apex ranks higher.

Frames and the apex are 1-based here, as in the formulas. Every variant sums to zero, so a
still clip pools to a zero image. The default MESTI variant is ``mesti``.
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("mesti", "mesti_proximity", "dynamic_raw", "dynamic_tvm")


def dynamic_raw(n: int) -> np.ndarray:
    """alpha_t = 2t - T - 1."""
    t = np.arange(1, n + 1, dtype=np.float64)
    return 2 * t - n - 1


def dynamic_tvm(n: int) -> np.ndarray:
    """alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}), H_k the k-th harmonic number."""
    t = np.arange(1, n + 1, dtype=np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / t)])  # H_0..H_T
    return 2 * (n - t + 1) - (n + 1) * (harmonic[n] - harmonic[:-1])


def mesti(n: int, apex: int) -> np.ndarray:
    """alpha_t = 2t - a - 1 before the apex, T - 1 at it, T + a - 2t after it."""
    _check_apex(n, apex)
    t = np.arange(1, n + 1, dtype=np.float64)
    return np.where(t < apex, 2 * t - apex - 1, np.where(t > apex, n + apex - 2 * t, n - 1))


def mesti_proximity(n: int, apex: int) -> np.ndarray:
    """alpha_t = (frames farther from the apex than t) - (frames nearer to it)."""
    _check_apex(n, apex)
    distance = np.abs(np.arange(1, n + 1) - apex)
    order = np.sort(distance)
    farther = n - np.searchsorted(order, distance, side="right")
    nearer = np.searchsorted(order, distance, side="left")
    return (farther - nearer).astype(np.float64)


def weights(variant: str, n: int, apex: int | None = None) -> np.ndarray:
    """The weights of a named variant; ``apex`` (1-based) is needed by the MESTI variants."""
    if variant == "dynamic_raw":
        return dynamic_raw(n)
    if variant == "dynamic_tvm":
        return dynamic_tvm(n)
    if apex is None:
        raise ValueError(f"{variant} needs an apex")
    if variant == "mesti":
        return mesti(n, apex)
    if variant == "mesti_proximity":
        return mesti_proximity(n, apex)
    raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


def _check_apex(n: int, apex: int) -> None:
    if not 1 <= apex <= n:
        raise ValueError(f"apex {apex} outside 1..{n}")
