"""Per-clip cost of the motion inputs, single-threaded, on a faces store.

    python -m bench.motion_cost cache/faces/sample.zarr [--clips 4]

Prints seconds per clip for the modality stage's flow images at several flow sizes (one
Dual TV-L1 pair per onset->apex image, two with apex->offset), the active image, and the
sequences stage's parts: the face mesh per sampled frame and the flow per consecutive pair.
Times are CPU seconds of this process (``time.process_time``), so a machine shared with
other work still gives comparable figures; the wall time of each whole section is printed
beside them.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from mesti.pipeline.faces import FaceModels
from mesti.pipeline.motion.images import FlowImages, motion_images
from mesti.pipeline.reader import open_store
from mesti.pipeline.sequences import SequencesConfig, sequence_arrays


def _timed(function, *args) -> float:
    started = time.process_time()
    function(*args)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces")
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    source = open_store(args.faces)
    clips = source.clip_ids[: args.clips]
    data = [(source.frames(c), source.landmarks(c)) for c in clips]
    frames_per_clip = np.mean([len(f) for f, _ in data])
    print(f"{len(clips)} clips of {source.location}, {frames_per_clip:.0f} frames on average, "
          f"one thread, CPU seconds", flush=True)
    for size in (64, 96, 128):
        seconds = [_timed(motion_images, f, len(f) // 2, ("flow_uvs",), FlowImages(size=size))
                   for f, _ in data]
        print(f"flow_uvs (one TV-L1 pair) at {size}x{size}: {np.mean(seconds):.2f} s per clip",
              flush=True)
    seconds = [_timed(motion_images, f, len(f) // 2, ("active_image",)) for f, _ in data]
    print(f"active_image: {1000 * np.mean(seconds):.1f} ms per clip")
    models = FaceModels()
    for config in (SequencesConfig(), SequencesConfig(size=144, flow=True)):
        costs, seconds = [], []
        for f, mesh in data:
            started = time.process_time()
            costs.append(sequence_arrays(f, mesh, config, models)[1])
            seconds.append(time.process_time() - started)
        meshes = sum(c["meshes"] for c in costs)
        line = (f"sequences (size {config.size}, {config.sampling} {config.length}, flow "
                f"{config.flow}): {np.mean(seconds):.2f} s per clip; face mesh "
                f"{1000 * sum(c['mesh_seconds'] for c in costs) / meshes:.1f} ms per frame "
                f"({meshes / len(costs):.0f} frames per clip)")
        if config.flow:
            flows = sum(c["flows"] for c in costs)
            line += (f"; TV-L1 {sum(c['flow_seconds'] for c in costs) / flows:.2f} s per pair "
                     f"({flows / len(costs):.0f} pairs per clip)")
        print(line, flush=True)


if __name__ == "__main__":
    main()
