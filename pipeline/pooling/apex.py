"""Where a clip's apex is: the annotation, the middle frame, or an estimate from the faces.

SMIC has no apex and some annotated apexes are invalid; the MESTI paper takes the middle
frame then. Three estimators, each smoothed over a few frames so one noisy frame cannot win:

- ``face_difference``: the frame whose whole aligned face differs most from the onset face.
- ``region_difference``: the same difference, only inside the brow and mouth regions (boxes
  around the 68-point brows and lips of the onset mesh), where micro-expressions happen,
  and never the window's first or last frame (the peers' rule: the apex lies inside).
- ``region_lbp``: the LBP feature difference of those regions from the onset (chi-squared
  distance between 8-neighbour LBP histograms per region), in the spirit of the D&C-RoI
  and LBP feature-difference spotters (Moilanen, Zhao, Pietikainen, ICPR 2014; Liong et
  al. 2018), with the same exclusion of the first and last frames.

Which one the stage uses is the ``apex_estimator`` knob; the modality metrics report each
one's error against the annotated apex (README, "Apex"). Positions here are 0-based.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.landmarks68 import pupil_distance, to_68

POLICIES = ("annotation", "middle", "estimate")
ESTIMATORS = ("face_difference", "region_difference", "region_lbp")
BROWS = (range(17, 22), range(22, 27))   # 68-point numbering, each brow on its own
MOUTH = range(48, 68)


def middle(n_frames: int) -> int:
    return (n_frames - 1) // 2


def grey_frames(frames: np.ndarray) -> np.ndarray:
    """The clip's luma (T, H, W) uint8, which every estimator reads: computed once."""
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])


def onset_difference(frames: np.ndarray, grey: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute difference of each RGB frame from the first, on the luma, per frame.

    OpenCV on uint8 luma: four times faster than float arithmetic, within 0.05 grey levels.
    """
    grey = grey_frames(frames) if grey is None else grey
    return np.array([cv2.absdiff(g, grey[0]).mean() for g in grey])


def smooth(score: np.ndarray, smoothing: int) -> np.ndarray:
    """Moving average over ``smoothing`` frames (edges repeated), same length."""
    if smoothing > 1 and len(score) > 1:
        kernel = np.ones(min(smoothing, len(score))) / min(smoothing, len(score))
        padded = np.pad(score, len(kernel) // 2, mode="edge")
        score = np.convolve(padded, kernel, mode="valid")[: len(score)]
    return score


def estimate(frames: np.ndarray, smoothing: int = 5, grey: np.ndarray | None = None) -> int:
    """Index of the frame that differs most from the onset, smoothed over ``smoothing`` frames."""
    return int(np.argmax(smooth(onset_difference(frames, grey), smoothing)))


def region_boxes(mesh: np.ndarray, side: int) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) around each brow (down to the eye line) and the mouth, from
    onset face-mesh points in crop pixels, padded by a fifth of the pupil distance."""
    points = to_68(mesh)
    pad = 0.2 * float(pupil_distance(points))
    eye_line = float(points[36:48, 1].mean())
    boxes = []
    for region, bottom in ((BROWS[0], eye_line), (BROWS[1], eye_line), (MOUTH, None)):
        p = points[list(region)]
        y1 = bottom if bottom is not None else p[:, 1].max() + pad
        box = (p[:, 1].min() - pad, y1, p[:, 0].min() - pad, p[:, 0].max() + pad)
        y0, y1, x0, x1 = (int(np.clip(round(v), 0, side)) for v in box)
        if y1 - y0 >= 4 and x1 - x0 >= 4:
            boxes.append((y0, y1, x0, x1))
    if not boxes:
        raise ValueError("the onset mesh puts no brow or mouth region inside the crop")
    return boxes


def _inside(score: np.ndarray, smoothing: int) -> int:
    """argmax of the smoothed score, never the first or last frame (when there are three)."""
    score = smooth(score, smoothing).astype(np.float64)
    if len(score) > 2:
        score[0] = score[-1] = -np.inf
    return int(np.argmax(score))


def region_difference(frames: np.ndarray, mesh: np.ndarray, smoothing: int = 5,
                      grey: np.ndarray | None = None) -> int:
    """Apex as the largest mean luma difference from the onset inside the brow and mouth boxes."""
    grey = grey_frames(frames) if grey is None else grey
    boxes = region_boxes(mesh, frames.shape[1])
    score = np.array([np.mean([cv2.absdiff(g[y0:y1, x0:x1], grey[0][y0:y1, x0:x1]).mean()
                               for y0, y1, x0, x1 in boxes]) for g in grey])
    return _inside(score, smoothing)


def lbp(grey: np.ndarray) -> np.ndarray:
    """8-neighbour local binary pattern codes (..., H-2, W-2) uint8 of grey images (..., H, W)."""
    centre = grey[..., 1:-1, 1:-1]
    h, w = grey.shape[-2:]
    code = np.zeros(centre.shape, np.uint8)
    offsets = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))
    for bit, (dy, dx) in enumerate(offsets):
        code |= (grey[..., dy:h - 2 + dy, dx:w - 2 + dx] >= centre).astype(np.uint8) << bit
    return code


def region_lbp(frames: np.ndarray, mesh: np.ndarray, smoothing: int = 5,
               grey: np.ndarray | None = None) -> int:
    """Apex as the largest chi-squared LBP histogram distance from the onset in the regions."""
    grey = grey_frames(frames) if grey is None else grey
    score = np.zeros(len(grey))
    for y0, y1, x0, x1 in region_boxes(mesh, frames.shape[1]):
        codes = lbp(grey[:, y0:y1, x0:x1]).reshape(len(grey), -1)
        # one bincount for the whole clip: frame t's codes offset by 256 t
        counts = np.bincount((codes + 256 * np.arange(len(grey))[:, None]).ravel(),
                             minlength=256 * len(grey)).reshape(len(grey), 256)
        h = counts / codes.shape[1]
        total = h + h[0]
        ratio = np.divide((h - h[0]) ** 2, total, out=np.zeros_like(total), where=total > 0)
        score += ratio.sum(axis=1)
    return _inside(score, smoothing)


def estimates(frames: np.ndarray, mesh: np.ndarray, smoothing: int = 5) -> dict[str, int]:
    """Every estimator's apex index, by name (ESTIMATORS)."""
    grey = grey_frames(frames)
    return {"face_difference": estimate(frames, smoothing, grey),
            "region_difference": region_difference(frames, mesh, smoothing, grey),
            "region_lbp": region_lbp(frames, mesh, smoothing, grey)}


def choose(policy: str, n_frames: int, annotated: int | None, estimated: int,
           fallback: str) -> tuple[int, str]:
    """The apex index under ``policy`` and the policy actually used.

    ``estimated`` is the chosen estimator's answer, computed once by the caller (which
    also reports it). ``annotation`` falls back to ``fallback`` ('middle' or 'estimate') where a
    clip has none.
    """
    if policy not in POLICIES or fallback not in ("middle", "estimate"):
        raise ValueError(f"apex policy {policy!r}/{fallback!r}; known: {POLICIES}")
    if policy == "annotation":
        if annotated is not None:
            return annotated, "annotation"
        policy = fallback
    if policy == "middle":
        return middle(n_frames), "middle"
    return estimated, "estimate"
