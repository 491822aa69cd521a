"""Per-clip cost of the motion inputs against their floor, single-threaded, on a faces store.

    python -m bench.motion_cost cache/faces/sample.zarr [--clips 4]

Prints one table: CPU seconds per clip of the modality stage's flow images at several flow
sizes (one Dual TV-L1 pair per onset->apex image), the active image, and the sequences
stage at two settings (with its parts: the face mesh per sampled frame and the flow per
consecutive pair); beside each, its floor, measured in the same run: reading that clip's
aligned frames back from the faces store, which any stage derived from the faces must do,
and the ratio cost / floor. Times are CPU seconds of this process (``time.process_time``),
so a machine shared with other work still gives comparable figures.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from mesti.pipeline.faces.align import FaceModels
from mesti.pipeline.motion.images import FlowImages, motion_images
from mesti.pipeline.runner.sequences import SequencesConfig, sequence_arrays
from mesti.pipeline.stores.read import open_store


def _timed(function, *args) -> float:
    started = time.process_time()
    function(*args)
    return time.process_time() - started


def _row(name: str, seconds: list[float], floor: np.ndarray, detail: str = "") -> str:
    cost, ratio = np.mean(seconds), np.mean(seconds) / floor.mean()
    return (f"| {name} | {1000 * cost:.1f} | {1000 * floor.mean():.1f} | "
            f"{ratio:.{1 if ratio < 10 else 0}f} | {detail} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces")
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    source = open_store(args.faces)
    clips = source.clip_ids[: args.clips]
    # The floor: each clip's aligned frames read back and decoded, twice, the faster kept
    # (the first read also warms the file cache that every later stage finds warm).
    floor = np.array([min(_timed(source.frames, c) for _ in range(2)) for c in clips])
    data = [(source.frames(c), source.landmarks(c)) for c in clips]
    frames_per_clip = np.mean([len(f) for f, _ in data])
    print(f"{len(clips)} clips of {source.location}, {frames_per_clip:.0f} frames of "
          f"{data[0][0].shape[1]}x{data[0][0].shape[2]} on average; one thread, CPU ms per "
          "clip; floor: reading the clip's aligned frames from the faces store")
    print()
    print("| cost | ms per clip | floor ms per clip | cost / floor | parts |")
    print("|---|---|---|---|---|")
    for size in (64, 96, 128):
        seconds = [_timed(motion_images, f, len(f) // 2, ("flow_uvs",), FlowImages(size=size))
                   for f, _ in data]
        print(_row(f"flow_uvs (one TV-L1 pair) at {size}x{size}", seconds, floor), flush=True)
    seconds = [_timed(motion_images, f, len(f) // 2, ("active_image",)) for f, _ in data]
    print(_row("active_image", seconds, floor), flush=True)
    models = FaceModels()
    for config in (SequencesConfig(), SequencesConfig(size=144, flow=True)):
        costs, seconds = [], []
        for f, mesh in data:
            started = time.process_time()
            costs.append(sequence_arrays(f, mesh, config, models)[1])
            seconds.append(time.process_time() - started)
        meshes = sum(c["meshes"] for c in costs)
        parts = (f"face mesh {1000 * sum(c['mesh_seconds'] for c in costs) / meshes:.1f} ms "
                 f"per frame ({meshes / len(costs):.0f} frames per clip)")
        if config.flow:
            flows = sum(c["flows"] for c in costs)
            parts += (f"; TV-L1 {1000 * sum(c['flow_seconds'] for c in costs) / flows:.0f} ms "
                      f"per pair ({flows / len(costs):.0f} pairs per clip)")
        print(_row(f"sequences (size {config.size}, {config.sampling} {config.length}, flow "
                   f"{config.flow})", seconds, floor, parts), flush=True)


if __name__ == "__main__":
    main()
