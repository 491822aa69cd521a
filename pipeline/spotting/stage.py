"""The spotting stages over a long-video manifest, one video after the other.

Videos run sequentially in this process (no Dask: a long video is one long task whose
frames depend on the previous k, and the sample has two). A video that fails (no frames,
no face anywhere, a broken frame) is a row of the failures table and the rest goes on.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from ..faces import align as faces
from ..faces.decode import ClipError
from .config import LearnedConfig, SeriesConfig, SpotterConfig
from .series import open_spotting_store, video_series


def read_videos(manifest: Path) -> list[dict[str, str]]:
    """The rows of a long-video manifest's videos.csv, ``root`` made absolute."""
    path = Path(manifest) / "videos.csv"
    if not path.is_file():
        raise ValueError(f"{manifest}: no videos.csv; not a long-video manifest folder")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        root = Path(row["root"])
        row["root"] = str(root if root.is_absolute() else (Path(manifest) / root).resolve())
    return rows


def run_series(manifest: Path, store_path: Path, config: SeriesConfig,
               metrics: Path | None = None, failures: Path | None = None) -> dict:
    """Write every video of ``manifest`` into the spotting store; return the metrics."""
    videos = read_videos(manifest)
    root = open_spotting_store(store_path)
    models = faces.FaceModels()
    done, failed, started = {}, [], time.perf_counter()
    for row in videos:
        if row["video"] in root:
            del root[row["video"]]
        group = root.create_group(row["video"])
        group.attrs.update({"dataset": row["dataset"], "video": row["video"],
                            "subject": row["subject"]})
        try:
            done[row["video"]] = video_series(Path(row["root"]) / row["source"], group,
                                              float(row["fps"]), config, models, row["video"])
        except ClipError as error:
            del root[row["video"]]
            failed.append({"video": row["video"], "code": error.code, "message": str(error)})
    frames = sum(v["frames"] for v in done.values())
    seconds = time.perf_counter() - started
    result = {"videos": len(videos), "videos_ok": len(done), "videos_failed": len(failed),
              "frames": frames,
              "frames_with_face": sum(v["frames_with_face"] for v in done.values())}
    if metrics:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text(json.dumps(result, indent=2) + "\n")
        timing = {"seconds": round(seconds, 2), "frames_per_second": round(frames / seconds, 2),
                  "per_video": done}
        metrics.with_suffix(".timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    if failures:
        failures.parent.mkdir(parents=True, exist_ok=True)
        with failures.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["video", "code", "message"])
            writer.writeheader()
            writer.writerows(failed)
    return result | {"seconds": round(seconds, 2)}


def run_spotting(store_path: Path, out_dir: Path, config: SpotterConfig,
                 manifest: Path | None = None, figures: bool = True) -> dict:
    """Spot every video of the store into ``out_dir/spots.csv``; with the long-video
    ``manifest``, score it (``metrics.json``, MEGC rule) and draw ``figures/<video>.png``."""
    from .evaluation import as_json, evaluate, read_intervals, read_truth, table
    from .figures import video_figure
    from .peaks import spot_store, write_spots
    from .series import open_spotting_store

    rows, series = spot_store(store_path, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_spots(rows, out_dir / "spots.csv")
    truth = read_truth([manifest]) if manifest else {}
    result: dict = {"videos": len(series), "spots": len(rows),
                    "micro": sum(r["type"] == "micro" for r in rows),
                    "macro": sum(r["type"] == "macro" for r in rows)}
    if manifest:
        scores = evaluate(truth, read_intervals(out_dir / "spots.csv"))
        (out_dir / "evaluation.md").write_text(table(scores))
        result |= {"evaluation": as_json(scores)}
    if figures:
        root = open_spotting_store(store_path)
        by_video = {v: i for d in truth.values() for v, i in d.items()}
        for video, per_scale in series.items():
            numbers = np.asarray(root[video]["frame_numbers"][:])
            video_figure(out_dir / "figures" / f"{video}.png", video, numbers, per_scale,
                         config.regions,
                         [(i.onset, i.offset, i.type) for i in by_video.get(video, [])],
                         [(r["onset"], r["offset"], r["type"]) for r in rows
                          if r["video"] == video])
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_learned(store_path: Path, manifest: Path, out_dir: Path, config: LearnedConfig) -> dict:
    """The learned spotter under LOSO (``learned.py``) into ``out_dir``: spots.csv,
    evaluation.md and metrics.json (folds and MEGC scores)."""
    from .evaluation import as_json, evaluate, read_intervals, read_truth, table
    from .learned import loso
    from .peaks import write_spots
    from .series import open_spotting_store

    truth = read_truth([manifest])
    by_video = {v: i for d in truth.values() for v, i in d.items()}
    root = open_spotting_store(store_path)
    videos = {}
    for name in sorted(root.group_keys()):
        group = root[name]
        if name not in by_video:
            raise ValueError(f"{store_path}: video {name!r} is not in {manifest}")
        videos[name] = {"flow": np.asarray(group["flow"][:]),
                        "found": np.asarray(group["found"][:]),
                        "numbers": np.asarray(group["frame_numbers"][:]),
                        "fps": float(group.attrs["fps"]), "k": int(group.attrs["k"]),
                        "subject": group.attrs["subject"],
                        "intervals": [(i.onset, i.offset, i.type) for i in by_video[name]]}
    rows, folds = loso(videos, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_spots(rows, out_dir / "spots.csv")
    scores = evaluate(truth, read_intervals(out_dir / "spots.csv"))
    (out_dir / "evaluation.md").write_text(table(scores))
    result = {"videos": len(videos), "spots": len(rows), "folds": folds,
              "evaluation": as_json(scores)}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result

