"""Linear Eulerian video magnification, applied to aligned frames before pooling or flow.

Wu, Rubinstein, Shih, Guttag, Durand, Freeman, "Eulerian Video Magnification for Revealing
Subtle Changes in the World" (SIGGRAPH 2012), in the form MEB's ``py_evm`` uses for
micro-expressions: each frame's Laplacian pyramid is filtered in time by a band-pass made
of the difference of two first-order IIR low-passes (y_t = (1 - r) y_{t-1} + r x_t, with
r1 = 0.4 and r2 = 0.05), multiplied by alpha and added back. Above the spatial cut-off
``lambda_c`` (wavelength in pixels) the amplification is reduced as in Wu et al.'s code:
alpha_l = min(alpha, (lambda_l / delta / 8 - 1) * exaggeration), delta = lambda_c / 8 /
(1 + alpha), lambda_l = sqrt(H^2 + W^2) / 3 / 2^(L - l) for band l of L (0 the finest,
the low-pass residual at D / 3). The coarsest (low-pass) band carries
illumination and is never amplified; the finest band is left out by default (Wu et al.).

The filter is linear and starts at rest on the first frame, so the first frame is returned
unchanged and a still clip is returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MagnifyParams:
    """Knobs of the magnification (params.yaml ``magnify`` entries of a stage)."""

    alpha: float = 10.0          # amplification of the pass band
    lambda_c: float = 16.0       # spatial cut-off wavelength, pixels
    r1: float = 0.4              # faster low-pass (upper edge of the band)
    r2: float = 0.05             # slower low-pass (lower edge)
    levels: int = 4              # Laplacian levels above the low-pass residual
    exaggeration: float = 2.0    # Wu et al.'s exaggeration factor below the cut-off
    skip_finest: bool = True     # leave the finest band unamplified (it is mostly noise)


def band_response(omega: np.ndarray | float, r1: float = 0.4, r2: float = 0.05) -> np.ndarray:
    """Complex frequency response of the band-pass at angular frequency ``omega`` (rad/frame)."""
    z = np.exp(-1j * np.asarray(omega, np.float64))
    return r1 / (1 - (1 - r1) * z) - r2 / (1 - (1 - r2) * z)


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band images finest first, then the low-pass residual; their collapse is ``image``."""
    bands, current = [], image
    for _ in range(levels):
        smaller = cv2.pyrDown(current)
        up = cv2.pyrUp(smaller, dstsize=(current.shape[1], current.shape[0]))
        bands.append(current - up)
        current = smaller
    bands.append(current)
    return bands


def collapse(bands: list[np.ndarray]) -> np.ndarray:
    """The image whose Laplacian pyramid is ``bands``."""
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = cv2.pyrUp(image, dstsize=(band.shape[1], band.shape[0])) + band
    return image


def level_alphas(height: int, width: int, params: MagnifyParams) -> list[float]:
    """Amplification per Laplacian band (finest first), cut above ``lambda_c``."""
    delta = params.lambda_c / 8 / (1 + params.alpha)
    alphas = []
    for level in range(params.levels):   # Wu et al.: the residual's wavelength is D / 3
        wavelength = np.hypot(height, width) / 3 / 2 ** (params.levels - level)
        reduced = (wavelength / delta / 8 - 1) * params.exaggeration
        alphas.append(max(0.0, min(params.alpha, reduced)))
    if params.skip_finest and alphas:
        alphas[0] = 0.0
    return alphas


def magnify(frames: np.ndarray, params: MagnifyParams = MagnifyParams()) -> np.ndarray:
    """Magnified frames (T, H, W[, C]) float32 of frames (T, H, W[, C]) in any numeric type."""
    if params.levels < 1 or not 0 < params.r2 < params.r1 <= 1:
        raise ValueError(f"magnify needs levels >= 1 and 0 < r2 < r1 <= 1, got {params}")
    frames = np.asarray(frames, np.float32)
    alphas = level_alphas(frames.shape[1], frames.shape[2], params)
    fast = slow = None
    out = np.empty_like(frames)
    for t, frame in enumerate(frames):
        bands = laplacian_pyramid(frame, params.levels)
        if fast is None:
            fast = [b.copy() for b in bands[:-1]]
            slow = [b.copy() for b in bands[:-1]]
            out[t] = frame
            continue
        added = []
        for level, band in enumerate(bands[:-1]):
            fast[level] += params.r1 * (band - fast[level])
            slow[level] += params.r2 * (band - slow[level])
            added.append(alphas[level] * (fast[level] - slow[level]))
        added.append(np.zeros_like(bands[-1]))
        out[t] = frame + collapse(added)
    return out
