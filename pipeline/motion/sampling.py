"""Which window positions a sequence model sees.

- ``uniform``: FDP (CYF-cuber/FDP) and MOL (CYF-cuber/MOL) take T = 8 frames at stride
  s = floor(L / T) from a window of L frames: phase p holds positions p + i*s (i < T), and
  MOL trains on every phase p < s. A window shorter than T (s = 0) has one phase that
  repeats frames: position floor(i * L / T) (documented fallback; no peer defines it).
- ``all``: one phase, every position.
- ``interpolate``: one phase of T positions spread evenly from the first frame to the last
  (fractional positions; frames are blended linearly between their neighbours). It plays
  the part of TIM (Zhou et al. 2011, a path-graph interpolation) in the peers' pipelines
  with a plain linear interpolation.
Positions are 0-based indices into the onset..offset window.
"""

from __future__ import annotations

import numpy as np

SAMPLINGS = ("uniform", "all", "interpolate")


def positions(n_frames: int, sampling: str = "uniform", length: int = 8) -> np.ndarray:
    """Window positions (P, T) float64 of each phase's frames."""
    if n_frames < 1 or length < 1:
        raise ValueError(f"need a window and a length of at least one frame, got "
                         f"{n_frames} and {length}")
    if sampling == "all":
        return np.arange(n_frames, dtype=np.float64)[None]
    if sampling == "interpolate":
        return np.linspace(0, n_frames - 1, length)[None]
    if sampling != "uniform":
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    stride = n_frames // length
    if stride == 0:
        return (np.arange(length) * n_frames // length).astype(np.float64)[None]
    return (np.arange(stride)[:, None] + stride * np.arange(length)[None]).astype(np.float64)


def blend(frames: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Frames at fractional positions ``where`` (any shape), linear between neighbours.

    Integer positions return the frames themselves (same dtype as ``frames``).
    """
    where = np.asarray(where, np.float64)
    low = np.floor(where).astype(int)
    high = np.minimum(low + 1, len(frames) - 1)
    share = (where - low).reshape(where.shape + (1,) * (frames.ndim - 1))
    if not share.any():
        return frames[low]
    mixed = (1 - share) * frames[low].astype(np.float64) + share * frames[high]
    if np.issubdtype(frames.dtype, np.integer):
        return np.rint(mixed).astype(frames.dtype)
    return mixed.astype(frames.dtype)
