"""A spotter that needs no training: region-wise peaks of the flow series, two time scales.

Input: a video group of the spotting store (``series.py``): per region the mean flow from
frame t - k to t, relative to the nose. Method, after the optical-flow spotting baselines
(e.g. He et al., MEGC 2020; Zhang et al., "Spatio-temporal fusion for macro- and
micro-expression spotting in long video sequences", FG 2020): per region, the magnitude of
the displacement over a window, a threshold from the video's own statistics, and intervals
where a region exceeds it. Here:

1. Two scales: micro, the k-frame flow itself, and macro, the sum of ``macro_steps``
   consecutive k-frame flows (the displacement over K = macro_steps * k frames, which a
   slow macro-expression needs; summing region means approximates the flow over K).
2. Per region: the magnitude, a moving average over ``smooth`` frames, and the threshold
   median + z * 1.4826 * MAD over the frames with a face (robust: one large macro-expression
   does not lift the threshold over every micro-expression, as mean + p * (max - mean)
   does). Eyes (blinks) and nose (the head reference) are left out by default.
3. Frames where any chosen region is over its threshold form runs; runs closer than K frames
   merge (the onset and offset lobes of one event). A displacement over K frames stays high
   after the movement ends, and the smoothed series crosses the threshold after the onset,
   so a run [s, e] gives the interval [s, e - K // 2] (measured on the synthetic sample).
4. Micro-scale intervals up to ``max_micro_seconds`` are micro-expressions, macro-scale
   intervals longer than it are macro. Where the two overlap, a macro interval no longer
   than the micro one plus K is that micro-expression seen by the slower scale (dropped);
   otherwise the micro intervals are fragments of the macro-expression (dropped).
   The score is the peak ratio of series to threshold. Runs shorter than ``min_seconds``
   (blinks leaking into the brows, noise peaks) are dropped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .config import REGIONS, SpotterConfig


def displacement(flow: np.ndarray, k: int, steps: int) -> np.ndarray:
    """Sum of ``steps`` k-frame flows ending at each frame: (T, R, 2); NaN counted as 0."""
    clean = np.nan_to_num(flow)
    total = clean.copy()
    for j in range(1, steps):
        total[j * k:] += clean[:-j * k] if j * k < len(clean) else 0
        total[:j * k] = 0
    return total


def smooth(series: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges averaged over what exists)."""
    if width <= 1:
        return series
    kernel = np.ones(width)
    padded = np.pad(series, [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (series.ndim - 1))
    counts = np.convolve(np.pad(np.ones(len(series)), (width // 2, width - 1 - width // 2)),
                         kernel, "valid")
    out = np.apply_along_axis(lambda c: np.convolve(c, kernel, "valid"), 0, padded)
    return out / counts.reshape(-1, *[1] * (series.ndim - 1))


def thresholds(series: np.ndarray, valid: np.ndarray, z: float) -> np.ndarray:
    """Per column: median + z * 1.4826 * MAD over the valid rows."""
    rows = series[valid] if valid.any() else series
    median = np.median(rows, axis=0)
    mad = np.median(np.abs(rows - median), axis=0)
    return median + z * 1.4826 * np.maximum(mad, 1e-6)


def runs(mask: np.ndarray, merge: int) -> list[tuple[int, int]]:
    """[start, end] index runs of True, joined across gaps of at most ``merge`` frames."""
    found: list[list[int]] = []
    for i in np.flatnonzero(mask).tolist():
        if found and i - found[-1][1] <= merge + 1:
            found[-1][1] = i
        else:
            found.append([i, i])
    return [(a, b) for a, b in found]


def scale_ratio(flow: np.ndarray, valid: np.ndarray, k: int, steps: int, z: float,
                columns: list[int], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, the largest ratio of a region's series to its threshold (0 where the
    frame has no face), with the series and thresholds (for the figure)."""
    series = smooth(np.linalg.norm(displacement(flow, k, steps)[:, columns], axis=-1), width)
    limit = thresholds(series, valid, z)
    ratio = np.where(valid[:, None], series / limit, 0.0).max(axis=1)
    return ratio, series, limit


def scale_intervals(ratio: np.ndarray, window: int, min_frames: int
                    ) -> list[tuple[int, int, float]]:
    """Intervals (start, end, score) in frame indices where ``ratio`` >= 1: runs joined
    across gaps up to ``window``, at least ``min_frames`` long (shorter ones are blinks and
    noise), ended ``window // 2`` frames earlier (the displacement outlasts the movement)."""
    return [(s, max(s, e - window // 2), float(ratio[s:e + 1].max()))
            for s, e in runs(ratio >= 1, window) if e - s + 1 >= min_frames]


def spot_video(flow: np.ndarray, found: np.ndarray, numbers: np.ndarray, fps: float, k: int,
               config: SpotterConfig) -> tuple[list[tuple[int, int, str, float]], dict]:
    """Spotted (onset, offset, type, score) in frame numbers, and the series per scale."""
    columns = [REGIONS.index(r) for r in config.regions]
    valid = found.astype(bool).copy()
    valid[:k] = False
    longest_micro = config.max_micro_seconds * fps
    found_by_scale, per_scale = {}, {}
    shortest = max(1, round(config.min_seconds * fps))
    for scale, steps, z in (("micro", 1, config.micro_z),
                            ("macro", config.macro_steps, config.macro_z)):
        ratio, series, limit = scale_ratio(flow, valid, k, steps, z, columns, config.smooth)
        found_by_scale[scale] = scale_intervals(ratio, k * steps, shortest)
        per_scale[scale] = (series, limit)
    micro = [m for m in found_by_scale["micro"] if m[1] - m[0] + 1 <= longest_micro]
    macro = []
    smear = k * config.macro_steps  # how much longer the macro scale sees any movement
    for m in found_by_scale["macro"]:
        if m[1] - m[0] + 1 <= longest_micro:
            continue
        inside = [x for x in micro if x[0] <= m[1] and m[0] <= x[1]]
        if inside and m[1] - m[0] + 1 <= max(x[1] - x[0] + 1 for x in inside) + smear:
            continue  # a micro-expression, seen (smeared) by the macro scale
        micro = [x for x in micro if x not in inside]  # fragments of the macro-expression
        macro.append(m)
    spots = [(int(numbers[s]), int(numbers[e]), kind, round(score, 4))
             for kind, chosen in (("micro", micro), ("macro", macro)) for s, e, score in chosen]
    spots.sort(key=lambda s: (s[0], s[1]))
    return spots, per_scale


def spot_store(store_path: Path, config: SpotterConfig) -> tuple[list[dict], dict]:
    """Spot every video of a spotting store; rows of spots.csv and the series per video."""
    from .series import open_spotting_store

    root = open_spotting_store(store_path)
    rows, series = [], {}
    for name in sorted(root.group_keys()):
        group = root[name]
        spots, per_scale = spot_video(np.asarray(group["flow"][:]), np.asarray(group["found"][:]),
                                      np.asarray(group["frame_numbers"][:]),
                                      float(group.attrs["fps"]), int(group.attrs["k"]), config)
        rows += [{"video": name, "onset": a, "offset": b, "type": t, "score": s}
                 for a, b, t, s in spots]
        series[name] = per_scale
    return rows, series


def write_spots(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video", "onset", "offset", "type", "score"])
        writer.writeheader()
        writer.writerows(rows)
