"""A training run's figures: the pooled confusion matrix and gradient-attention maps.

``confusion.png``: counts and row percentages (the share of each true class predicted as each
class), titled with the run's protocol, model and input. ``attention.png``: a few test clips'
input images with their attention map overlaid, each titled with the true and predicted label.
Written with the same writer as ``mesti show`` (PNG, PDF or SVG by extension).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from mesti.pipeline.figures import save_figure


def attention_maps(model: torch.nn.Module, x: torch.Tensor, test: np.ndarray,
                   device: torch.device, count: int) -> list[tuple[int, np.ndarray]]:
    """(clip row, attention map) of the first ``count`` test clips, from a gradient-attention
    model trained without them."""
    model.eval()
    with torch.no_grad():
        batch = x[test[:count]].to(device)
        attention = model.input_attention.attention_map(batch)[:, 0].cpu().numpy()
    return [(int(i), a) for i, a in zip(test[:count], attention, strict=True)]


def run_title(config) -> str:
    """What identifies a run in a figure: protocol, classes, model, input and epochs."""
    return (f"{config.protocol}, {config.labels} classes, {config.variant} on "
            f"{config.modality} ({config.input_size} px, {config.epochs} epochs, "
            f"seed {config.seed})")


def confusion_figure(matrix: list[list[int]] | np.ndarray, classes: list[str],
                     title: str) -> Figure:
    """Rows truth, columns prediction; each cell its count and its share of the row."""
    counts = np.asarray(matrix)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.9 * len(classes)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(share * 100, cmap="Blues", vmin=0, vmax=100)
    for r in range(len(classes)):
        for c in range(len(classes)):
            axes.text(c, r, f"{counts[r, c]}\n{share[r, c]:.0%}", ha="center", va="center",
                      fontsize=9, color="white" if share[r, c] > 0.6 else "black")
    axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("prediction")
    axes.set_ylabel("truth")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="% of the true class")
    axes.set_title(f"{title}\n{int(counts.sum())} clips", fontsize=9)
    return figure


def attention_figure(maps: list[tuple[np.ndarray, np.ndarray, str, str, str]],
                     title: str) -> Figure:
    """Per clip (image, attention, clip id, truth, prediction): the input image, and the
    image with its attention map overlaid (scaled to the image, one colour bar each)."""
    figure = Figure(figsize=(6, 2.8 * len(maps)), layout="constrained")
    grid = figure.add_gridspec(len(maps), 2)
    for row, (image, attention, clip_id, truth, prediction) in enumerate(maps):
        left = figure.add_subplot(grid[row, 0])
        left.imshow(image)
        left.set_title(f"{clip_id}\ntrue {truth}, predicted {prediction}", fontsize=8)
        right = figure.add_subplot(grid[row, 1])
        right.imshow(image)
        size = image.shape[0]
        shown = right.imshow(attention, cmap="jet", alpha=0.45, interpolation="nearest",
                             extent=(-0.5, size - 0.5, size - 0.5, -0.5))
        right.set_title("gradient attention", fontsize=8)
        figure.colorbar(shown, ax=right, shrink=0.8)
        for axes in (left, right):
            axes.set_xticks([])
            axes.set_yticks([])
    figure.suptitle(title, fontsize=9)
    return figure


def write_run_figures(out: Path, table, probabilities: np.ndarray, metrics: dict,
                      maps: list[tuple[int, np.ndarray]], config,
                      extension: str = ".png") -> list[Path]:
    """Write ``confusion`` and (with maps) ``attention`` into the run folder ``out``."""
    title = run_title(config)
    written = [save_figure(confusion_figure(metrics["confusion"], table.classes, title),
                           out / f"confusion{extension}")]
    if maps:
        rows = [(table.images[i], attention, str(table.clip_ids[i]),
                 table.classes[int(table.labels[i])],
                 table.classes[int(probabilities[i].argmax())]) for i, attention in maps]
        written.append(save_figure(attention_figure(rows, title), out / f"attention{extension}"))
    return written
