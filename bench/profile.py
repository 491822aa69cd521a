"""Where a frame's CPU time goes in ``mesti preprocess``: the split bench/ANALYSIS.md quotes.

    .venv/bin/python -m bench.profile                 # the benchmark's dataset, 40 x 60 frames
    .venv/bin/python -m bench.profile --clips 10 --frames 60

Runs the real one-pass code (``run_preprocess`` with ``workers=0``: this process, no Dask)
under cProfile, twice: once to warm the models, the Numba cache and the page cache, once
measured into fresh stores. Each step is the profiler's time of the functions that do it,
divided by the frames processed; "other" is what the steps do not cover (the Python loop,
attribute and key handling). Separately, without the profiler: the same run's wall time per
frame and the decode floor's (read + decode every frame), so the ratio printed is the one
process's pipeline over its floor, fixed costs excluded.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

# step -> the functions whose time it is: (file suffix, function name, caller). The time is
# each function's cumulative time (itself and what it calls) when called from that caller,
# so nothing is counted twice (cvtColor inside equalise counts in equalise only).
STEPS: dict[str, list[tuple[str, str, str]]] = {
    "read files (np.fromfile)": [("~", "<built-in method numpy.fromfile>", "read_input")],
    "input hash (sha256)": [("~", "<method 'update' of '_hashlib.HASH' objects>",
                             "read_input")],
    "JPEG decode (cv2.imdecode)": [("~", "<imdecode>", "decode_image")],
    "detection + mesh (once a clip, amortised)": [
        ("pipeline/faces/align.py", name, "_align") for name in ("detect", "landmarks",
                                                           "attempt_faces")] + [
        ("pipeline/runner/stages.py", "_models", "_align")],
    "warp to the crop (cv2.warpAffine)": [("pipeline/faces/align.py", "warp", "_align")],
    "colour + equalise": [("pipeline/faces/align.py", "equalise", "_align"),
                          ("~", "<cvtColor>", "_align")],
    "faces store write": [("pipeline/stores/write.py", "write_clip", "_faces")],
    "apex estimates": [("pipeline/pooling/apex.py", "estimates", "_write_modalities")],
    "pooling kernels (MESTI, dynamic images)": [
        ("pipeline/pooling/kernels.py", name, "_write_modalities")
        for name in ("weighted_sum", "to_uint8", "flat_tolerance")],
    "motion images": [("pipeline/motion/images.py", "motion_images", "_write_modalities")],
    "modality store write (zstd, shards)": [
        ("pipeline/stores/write.py", "write_clip", "_write_modalities")],
    "content keys and existing-clip checks": [
        ("pipeline/stores/write.py", "existing_key", caller) for caller in ("_faces",
                                                                      "preprocess_clip")] + [
        ("pipeline/stores/write.py", "faces_key", "_faces"),
        ("pipeline/runner/stages.py", "_modalities_key", "preprocess_clip")],
}


def step_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Each step's seconds: the cumulative time of its functions along its caller edges."""
    seconds = {}
    for step, functions in STEPS.items():
        total = 0.0
        for suffix, name, caller in functions:
            for key, entry in stats.stats.items():
                if key[2] != name or not key[0].endswith(suffix):
                    continue
                for caller_key, edge in entry[4].items():
                    if caller_key[2] == caller:
                        total += edge[3]  # cumulative time along this edge
        seconds[step] = total
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)

    from mesti.datasets_manifest.manifest import read_manifest
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.runner.cluster import ClusterOptions
    from mesti.pipeline.runner.run import run_preprocess
    from mesti.pipeline.runner.stages import ModalitiesConfig

    from bench import dataset
    from bench.tasks import decode_clip

    data = dataset.prepare(args.data_dir, args.clips, args.frames)
    records = read_manifest(data.manifest)
    frames = sum(r.n_frames for r in records)
    serial = ClusterOptions(workers=0, progress=False)
    paths = [[str(Path(r.root) / r.source / name) for name in r.frames] for r in records]

    def run(scratch: Path) -> float:
        started = time.perf_counter()
        metrics = run_preprocess(data.manifest, scratch / "faces.zarr",
                                 scratch / "modalities.zarr", FacesConfig(),
                                 ModalitiesConfig(), serial)
        if metrics["modalities"]["clips_ok"] != len(records):
            raise RuntimeError(f"not every clip was computed: {metrics}")
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory(dir=args.data_dir) as scratch:
        scratch = Path(scratch)
        run(scratch / "warm")
        floor = time.perf_counter()
        for clip in paths:
            decode_clip(clip)
        floor = time.perf_counter() - floor
        wall = run(scratch / "plain")
        profiler = cProfile.Profile()
        profiler.enable()
        profiled = run(scratch / "profiled")
        profiler.disable()
    seconds = step_seconds(pstats.Stats(profiler))
    print(f"\n{len(records)} clips, {frames} frames of 640x480 colour JPEG; one process, "
          "no Dask; ms per frame\n")
    print("| step | ms/frame | share |\n|---|---|---|")
    for step, value in seconds.items():
        print(f"| {step} | {1e3 * value / frames:.3f} | {100 * value / profiled:.0f}% |")
    other = profiled - sum(seconds.values())
    print(f"| other (Python loop, attributes, keys) | {1e3 * other / frames:.3f} | "
          f"{100 * other / profiled:.0f}% |")
    print(f"| total under the profiler | {1e3 * profiled / frames:.3f} | 100% |")
    print(f"\nwithout the profiler: pipeline {1e3 * wall / frames:.3f} ms/frame, decode "
          f"floor {1e3 * floor / frames:.3f} ms/frame, ratio {wall / floor:.2f}x "
          "(one process, fixed costs excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
