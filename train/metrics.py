"""The field's metrics (MEGC convention), on predictions pooled over all folds.

UF1: mean over classes of 2TP / (2TP + FP + FN). UAR: mean over classes of TP / N_class.
ACC: the fraction correct. WF1: F1 per class weighted by its support (cross-dataset runs).
A class absent from the pooled truth is left out of the means.
"""

from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with truth along rows and predictions along columns."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def scores(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    """UF1, UAR, ACC and WF1 of pooled predictions (class indices 0..n_classes-1)."""
    matrix = confusion(truth, predicted, n_classes)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = support - tp
    present = support > 0
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    total = support.sum()
    return {
        "UF1": float(f1[present].mean()) if present.any() else 0.0,
        "UAR": float(recall[present].mean()) if present.any() else 0.0,
        "ACC": float(tp.sum() / total) if total else 0.0,
        "WF1": float((f1 * support).sum() / total) if total else 0.0,
    }
