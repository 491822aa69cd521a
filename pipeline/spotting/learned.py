"""A learned spotter trained under leave-one-subject-out on the spotting store.

Small on purpose: a softmax regression (three classes per frame: none, micro, macro) on a
window of the store's region series, trained by full-batch gradient descent in numpy, with
classes weighted by their inverse frequency. It is the shallow learned counterpart of the
training-free spotter (``peaks.py``), on the same inputs, not a published network.

Features of frame t, per region (all seven): the k-frame flow magnitude and the
displacement over ``macro_steps`` k-frame flows, each scaled by its video's median and MAD
(so videos and subjects of different motion levels compare), at the frames t + j * stride
for j in -window..window. Labels: the frame lies inside a micro or a macro truth interval.
Under LOSO, every subject's videos are spotted by a model trained on the other subjects'
videos only; spotted intervals are runs of frames whose most likely class is micro or
macro, at least ``min_seconds`` long, typed by that class.
"""

from __future__ import annotations

import numpy as np

from .config import LearnedConfig
from .peaks import displacement, runs, smooth


def features(flow: np.ndarray, found: np.ndarray, k: int, config: LearnedConfig) -> np.ndarray:
    """(T, F) features of one video (module doc); frames without a face give zeros."""
    valid = found.astype(bool).copy()
    valid[:k] = False
    scales = []
    for steps in (1, config.macro_steps):
        series = np.linalg.norm(displacement(flow, k, steps), axis=-1)  # (T, R)
        rows = series[valid] if valid.any() else series
        median = np.median(rows, axis=0)
        mad = 1.4826 * np.median(np.abs(rows - median), axis=0)
        scaled = np.where(valid[:, None], (series - median) / np.maximum(mad, 1e-6), 0.0)
        scales.append(np.clip(scaled, -5.0, 50.0))
    base = np.concatenate(scales, axis=1)
    n = len(base)
    shifted = []
    for j in range(-config.window, config.window + 1):
        index = np.clip(np.arange(n) + j * config.stride, 0, n - 1)
        shifted.append(base[index])
    return np.concatenate(shifted, axis=1).astype(np.float64)


def frame_labels(numbers: np.ndarray, intervals: list[tuple[int, int, str]]) -> np.ndarray:
    """0 (none), 1 (micro) or 2 (macro) per frame number."""
    labels = np.zeros(len(numbers), np.int64)
    for onset, offset, kind in intervals:
        labels[(numbers >= onset) & (numbers <= offset)] = 1 if kind == "micro" else 2
    return labels


def train(x: np.ndarray, y: np.ndarray, config: LearnedConfig) -> tuple[np.ndarray, ...]:
    """Softmax regression weights (F + 1, 3) and the feature scaling, by gradient descent."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    counts = np.bincount(y, minlength=3).astype(float)
    weight = np.where(counts > 0, len(y) / (3 * np.maximum(counts, 1)), 0.0)[y]
    onehot = np.eye(3)[y]
    w = np.zeros((z.shape[1], 3))
    for _ in range(config.epochs):
        p = _softmax(z @ w)
        gradient = z.T @ ((p - onehot) * weight[:, None]) / weight.sum()
        gradient[:-1] += config.l2 * w[:-1]
        w -= config.lr * gradient
    return w, mean, std


def predict(x: np.ndarray, model: tuple[np.ndarray, ...]) -> np.ndarray:
    w, mean, std = model
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    return _softmax(z @ w)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def spotted(probabilities: np.ndarray, numbers: np.ndarray, fps: float,
            config: LearnedConfig) -> list[tuple[int, int, str, float]]:
    """Runs of frames whose most likely class (after a moving average of ``smooth`` frames)
    is micro or macro, joined across gaps up to ``merge`` frames, in frame numbers."""
    probabilities = smooth(probabilities, config.smooth)
    best = probabilities.argmax(axis=1)
    shortest = max(1, round(config.min_seconds * fps))
    out = []
    for label, kind in ((1, "micro"), (2, "macro")):
        for s, e in runs(best == label, config.merge):
            if e - s + 1 >= shortest:
                out.append((int(numbers[s]), int(numbers[e]), kind,
                            round(float(probabilities[s:e + 1, label].mean()), 4)))
    return sorted(out)


def loso(videos: dict[str, dict], config: LearnedConfig) -> tuple[list[dict], dict]:
    """Spots of every video by the model of the other subjects; per-fold counts.

    ``videos`` maps a video id to its ``flow``, ``found``, ``numbers``, ``fps``, ``k``,
    ``subject`` and truth ``intervals`` ((onset, offset, type) in frame numbers).
    """
    data = {v: (features(d["flow"], d["found"], d["k"], config),
                frame_labels(d["numbers"], d["intervals"])) for v, d in videos.items()}
    subjects = sorted({d["subject"] for d in videos.values()})
    rows, folds = [], {}
    for subject in subjects:
        train_ids = [v for v, d in videos.items() if d["subject"] != subject]
        test_ids = [v for v, d in videos.items() if d["subject"] == subject]
        if not train_ids:
            folds[subject] = "skipped: no other subject to train on"
            continue
        x = np.concatenate([data[v][0] for v in train_ids])
        y = np.concatenate([data[v][1] for v in train_ids])
        model = train(x, y, config)
        for video in test_ids:
            d = videos[video]
            for onset, offset, kind, score in spotted(predict(data[video][0], model),
                                                      d["numbers"], d["fps"], config):
                rows.append({"video": video, "onset": onset, "offset": offset, "type": kind,
                             "score": score})
        folds[subject] = {"train_videos": len(train_ids), "test_videos": len(test_ids)}
    rows.sort(key=lambda r: (r["video"], r["onset"]))
    return rows, folds
