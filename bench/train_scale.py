"""``python -m bench.train_scale``: one training protocol run sequentially and on Dask workers.

    .venv/bin/python -m bench.train_scale                       # CPU: --workers 0 vs 2
    .venv/bin/python -m bench.train_scale --scale 1 --epochs 50 --input-size 112 \\
        --device cuda --workers 1 8                             # a GPU: the full MEGC LOSO

A MEGC 2019-shaped synthetic composite of modality stores (CASME II 145 clips of 24 subjects,
SAMM 133 of 28, SMIC-HS 164 of 16; ``--scale`` keeps that share of each dataset's subjects),
written by the project's own store writer with random images (this measures cost, not
accuracy), then ``run_training`` under LOSO once per ``--workers`` value on the same stores.
Prints one row per run: wall time, the speed-up over the first run against the ideal (the
ratio of workers), the peak resident memory of a fold's process and, on CUDA, the device
memory a fold allocated; and whether every output but the timing file equals the first
run's, byte for byte. Writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

MEGC = (("casme2", 24, 145), ("samm", 28, 133), ("smic", 16, 164))
LABELS = ("negative", "positive", "surprise")


def write_stores(root: Path, scale: float, size: int, seed: int = 0) -> list[str]:
    """The composite's modality stores (``scale`` of each dataset's subjects and clips)."""
    from mesti.pipeline.stores import write as store

    rng = np.random.default_rng(seed)
    paths = []
    for dataset, subjects, clips in MEGC:
        subjects = max(2, round(subjects * scale))
        clips = max(subjects, round(clips * scale))
        path = root / f"{dataset}.zarr"
        store.open_for_writing(path, "modalities", {"dataset": dataset, "images": ["mesti"]})
        ids = []
        for n in range(clips):
            clip_id, label = f"c{n:03d}", LABELS[n % len(LABELS)]
            image = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
            attrs = {"dataset": dataset, "subject": f"s{n % subjects:02d}", "clip_id": clip_id,
                     "emotion": label, "label3": label, "label5": None, "n_frames": 10,
                     "lo": [0.0], "hi": [1.0]}
            store.write_clip(path, clip_id, {"images": image}, attrs, f"key-{dataset}-{n}",
                             per_image=("images",))
            ids.append(clip_id)
        store.finalise(path, ids, {})
        paths.append(str(path))
    return paths


def files(run: Path) -> dict[str, bytes]:
    from mesti.train.tracking import TIMING

    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != TIMING}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="one run per value; 0: in this process [default: 0 2]")
    parser.add_argument("--scale", type=float, default=0.25,
                        help="share of the MEGC composite's subjects and clips [0.25]")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--store-size", type=int, default=112,
                        help="the stores' image size (the modality stores' own is 224)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)

    from mesti.train.determinism import pin_process

    pin_process()  # as `mesti train` does, before torch starts
    from mesti.pipeline.runner.cluster import ClusterOptions
    from mesti.train.config import TrainConfig
    from mesti.train.run import run_training
    from mesti.train.tracking import TIMING

    config = TrainConfig(epochs=args.epochs, input_size=args.input_size,
                         batch_size=args.batch_size, device=args.device, figure_clips=0,
                         save_weights=False)
    rows, first = [], None
    with tempfile.TemporaryDirectory(prefix="train_scale") as scratch:
        stores = write_stores(Path(scratch), args.scale, args.store_size)
        for workers in args.workers:
            out = Path(scratch) / f"run_{workers}"
            started = time.perf_counter()
            metrics = run_training(stores, out, config, progress=False,
                                   cluster=ClusterOptions(workers=workers, progress=False))
            seconds = time.perf_counter() - started
            timing = json.loads((out / TIMING).read_text())
            written = files(out)
            first = first or (seconds, max(workers, 1), written)
            rows.append({
                "workers": workers, "folds": metrics["folds"], "seconds": round(seconds, 1),
                "speed-up": round(first[0] / seconds, 2),
                "training s per fold (mean)": round(float(np.mean(timing["folds_seconds"])), 2),
                "ideal": round(max(workers, 1) / first[1], 2),
                "peak RSS per fold process (MiB)": max(timing.get("folds_peak_rss_mib", [0])),
                "CUDA per fold (MiB)": max(timing.get("folds_cuda_peak_mib", [0])),
                "same bytes as first": written == first[2]})
    clips = sum(max(max(2, round(s * args.scale)), round(c * args.scale)) for _, s, c in MEGC)
    print(f"LOSO on a MEGC-shaped composite: {clips} clips, {rows[0]['folds']} folds, "
          f"{args.epochs} epoch(s), {args.input_size} px from {args.store_size} px stores, "
          f"batch {args.batch_size}, {args.device}")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
