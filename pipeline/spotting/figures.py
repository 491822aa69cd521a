"""One figure per video: the region series of both scales, their thresholds, the ground
truth and the spotted intervals (``mesti spot`` writes them beside spots.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"micro": "tab:orange", "macro": "tab:blue"}


def video_figure(path: Path, video: str, numbers: np.ndarray, per_scale: dict,
                 regions: tuple[str, ...], truth: list[tuple[int, int, str]],
                 spots: list[tuple[int, int, str]]) -> Path:
    """Draw one video: a panel per scale (series, thresholds dashed), truth shaded below,
    spots as bars on top. Returns the path written (.png, .pdf or .svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, constrained_layout=True)
    for ax, scale in zip(axes, ("micro", "macro"), strict=True):
        series, limit = per_scale[scale]
        for i, region in enumerate(regions):
            line, = ax.plot(numbers, series[:, i], lw=0.8, label=region)
            ax.axhline(limit[i], color=line.get_color(), ls="--", lw=0.7)
        top = float(np.nanmax(series)) if series.size else 1.0
        for onset, offset, kind in truth:
            ax.axvspan(onset, offset, color=COLOURS[kind], alpha=0.15 if kind == scale else 0.05)
        for onset, offset, kind in spots:
            if kind == scale:
                ax.plot([onset, offset], [top * 1.05] * 2, color=COLOURS[kind], lw=4,
                        solid_capstyle="butt")
        ax.set_ylabel(f"{scale} scale: |displacement| (px)")
        ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    axes[0].legend(ncol=len(regions), fontsize=7, loc="upper left")
    axes[-1].set_xlabel("frame")
    axes[0].set_title(f"{video}: region series, thresholds (dashed), truth (shaded: orange "
                      "micro, blue macro), spotted (bars)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
