"""Long-video throughput against the decode floor, and peak memory as a video doubles.

    python -m bench.spotting [--seconds 1.0] [--chunk 64]

Two rows:

1. Throughput: ``mesti spot-series``'s per-video work (``series.video_series``: find and
   align the face, stabilise every frame, the k-frame Dual TV-L1 flow and strain, region
   means, chunked writes) on one 20-second synthetic 320x240 30 fps video (the DVC sample's
   size), in frames of video per second, against merely decoding the same frames
   (``pipeline.faces.decode.read_image``): the floor any spotting of that video pays.
2. Memory: a SAMM-sized video (2040x1088 at 200 fps, ``--seconds`` long) and the same frames
   twice over (a video twice as long), each processed in a fresh interpreter; the peak
   resident memory of each (``ru_maxrss``). Bounded memory means the two are about equal:
   what is held is one chunk of each array, the last k + 1 crops and one decoded frame.

Runs on one process, one video at a time, as the stage does. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mesti.pipeline.faces.decode import read_image
from mesti.pipeline.spotting.config import LongSampleConfig
from mesti.pipeline.spotting.synthetic import generate_long_sample

CHILD = """
import json, resource, sys, time
from pathlib import Path
import zarr
from mesti.pipeline.faces import align as faces
from mesti.pipeline.spotting.config import SeriesConfig
from mesti.pipeline.spotting.series import video_series
folder, store, fps, chunk = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
group = zarr.open_group(store, mode="w", zarr_format=3).create_group("video")
started = time.perf_counter()
summary = video_series(folder, group, fps, SeriesConfig(chunk_frames=chunk), faces.FaceModels())
summary["wall"] = time.perf_counter() - started
summary["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(summary))
"""


def _video(root: Path, config: LongSampleConfig) -> Path:
    generate_long_sample(root, config)
    return next((root / "rawpic").glob("s*/*"))


def _run(folder: Path, fps: float, chunk: int, work: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(work / "s.zarr"),
                          str(fps), str(chunk)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _decode_floor(folder: Path) -> float:
    frames = sorted(folder.glob("img*.jpg"))
    started = time.perf_counter()
    for path in frames:
        read_image("bench", path)
    return len(frames) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="length of the SAMM-sized video (doubled for the second run)")
    parser.add_argument("--chunk", type=int, default=64,
                        help="chunk_frames: small, so both videos span several chunks")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = _video(work / "small", LongSampleConfig(videos=1))
        run = _run(small, 30.0, args.chunk, work)
        floor = _decode_floor(small)
        rate = run["frames"] / run["wall"]
        rows.append(f"| throughput, 320x240 30 fps, {run['frames']} frames | {rate:.1f} frames/s "
                    f"| decode floor {floor:.1f} frames/s | {floor / rate:.1f}x the floor |")
        big = _video(work / "big", LongSampleConfig(videos=1, seconds=args.seconds, fps=200.0,
                                                    width=2040, height=1088,
                                                    blinks_per_minute=0.0, head_turns=0))
        twice = work / "twice"
        twice.mkdir()
        frames = sorted(big.glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
        for i, path in enumerate(frames + frames, start=1):
            os.symlink(path, twice / f"img{i}.jpg")
        one, two = _run(big, 200.0, args.chunk, work), _run(twice, 200.0, args.chunk, work)
        big_floor = _decode_floor(big)
        for label, result in (("", one), (" (twice as long)", two)):
            rows.append(f"| 2040x1088 200 fps, {result['frames']} frames{label} | "
                        f"{result['frames'] / result['wall']:.1f} frames/s | decode floor "
                        f"{big_floor:.1f} frames/s | peak {result['peak_mb']:.0f} MB |")
    print(f"chunk_frames {args.chunk}, one process, {os.cpu_count()} CPUs visible")
    print("| what | spot-series | floor | ratio or memory |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
