"""``make bench``: the preprocessing pipeline's speed and memory against its targets.

    .venv/bin/python -m bench.run                       # 40 clips x 60 frames, 640x480 JPEG
    .venv/bin/python -m bench.run --clips 4 --frames 12 --rounds 2   # a smoke run (labelled)

Run it as a module (``-m``) from the repository root: Dask's workers are spawned
processes that import the ``bench`` package. It generates a synthetic CASME II-layout
dataset (kept under ``bench/data/`` for the next run of the same size), measures, prints
one table and writes it to ``bench/RESULTS.md`` with the machine, the command and every
round's raw seconds.

Absolute times on a shared machine move by 20% or more, so every target is a ratio of two
figures measured in the same round (back to back), and the table gives the median and the
range of that ratio over the rounds. ``python -m bench.profile`` splits a frame's CPU time
by step; ``python -m bench.megc`` (``make bench-megc``) runs a MEGC-shaped composite.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import Row, machine, results_markdown, table

if TYPE_CHECKING:
    from bench.dataset import Dataset
    from bench.measure import Timing

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CLIPS, DEFAULT_FRAMES, DEFAULT_ROUNDS = 40, 60, 5
WORKERS = (1, 2)

# Targets (the project issue on one-pass preprocessing).
FLOOR_RATIO_MAX = 1.5         # end-to-end time / decode-floor time, on 1 and 2 workers
SCALING_MIN = 1.8             # 1-worker time / 2-worker time
RERUN_FRACTION_MAX = 0.15     # modalities-only re-run / full run
RECIPE_SPEEDUP_MIN = {"mediapipe": 2.5, "haar": 5.0}  # usual recipe / pipeline, equal cores
KERNEL_BOUND_RATIO_MAX = 2.0  # kernel time / copy time
MEMORY_GROWTH_MAX = 1.10      # "flat": peak at 2N clips / peak at N clips


@dataclass
class Round:
    """Seconds measured in one round, back to back."""

    floor: dict[int, float] = field(default_factory=dict)   # workers -> decode floor
    e2e: dict[int, float] = field(default_factory=dict)     # workers -> preprocess
    rerun: float = 0.0                                      # modalities knob, most workers
    fixed: dict[int, float] = field(default_factory=dict)   # workers -> start+warm+stop
    recipe: dict[str, float] = field(default_factory=dict)  # detector -> usual recipe


@dataclass(frozen=True)
class Measurements:
    """Everything one benchmark run measured."""

    dataset: Dataset
    rounds: list[Round]
    recipe_face_rate: dict[str, float]
    kernel: dict[str, Timing]
    peak_rss: dict[int, list[float]]   # clips -> each worker's peak MiB
    disk_per_frame: float              # faces store bytes per frame
    train_images_per_s: dict[int, float]  # input size -> training images per second


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                        help="clips in the benchmark dataset (the memory row also runs 2x this)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per clip")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="rounds of the paired timings; medians and ranges over them")
    parser.add_argument("--repeats", type=int, default=200,
                        help="timed calls of the kernel and the copy (tensordot: a tenth)")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data",
                        help="where the generated dataset is kept and scratch stores go")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md",
                        help="the Markdown file the table is written to")
    parser.add_argument("--no-results", action="store_true", help="print only; write no file")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.frames < 3 or args.rounds < 1 or args.repeats < 1:
        parser.error("need --clips >= 1, --frames >= 3, --rounds >= 1, --repeats >= 1")
    return args


def say(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_all(args: argparse.Namespace, scratch: Path) -> Measurements:
    """Every experiment; the paired timings in rounds, the rest once."""
    # Imported here, not at the top: Dask's spawned workers re-import this module (as
    # __mp_main__), and its top level stays light so the workers do not pay for it.
    from bench import baseline, dataset, measure

    say(f"dataset: {2 * args.clips} clips x {args.frames} frames (generated once, reused)")
    data = dataset.prepare(args.data_dir, args.clips, args.frames)
    rounds, face_rate = [], {}
    most = max(WORKERS)
    for index in range(args.rounds):
        say(f"round {index + 1}/{args.rounds}")
        r, here = Round(), scratch / f"round{index}"
        for workers in WORKERS:
            r.floor[workers] = measure.decode_floor(data.manifest, workers)
            run = measure.end_to_end(data.manifest, here, workers)
            r.e2e[workers] = run.seconds
            r.fixed[workers] = measure.fixed_cost(workers)
        r.rerun = measure.modality_rerun(run, data.manifest)
        for detector in baseline.DETECTORS:
            r.recipe[detector], face_rate[detector] = baseline.run_recipe(
                data.manifest, here / f"recipe-{detector}", detector, most)
        rounds.append(r)
        say("  " + json.dumps(asdict(r)))
    say(f"kernel: {args.repeats} repeats")
    kernel = measure.kernel_timings(args.repeats)
    peak_rss, disk = {}, 0.0
    for clips, manifest in ((args.clips, data.manifest), (2 * args.clips, data.manifest_double)):
        say(f"peak memory: {clips} clips, {_workers(most)}")
        peak_rss[clips], disk = measure.peak_rss_and_disk(manifest, scratch, most)
    say("training: MEGANet images per second")
    from mesti.train.run import TrainConfig

    from bench.training import training_throughput

    sizes = sorted({TrainConfig().input_size, 64})
    throughput = {size: training_throughput(size) for size in sizes}
    return Measurements(data, rounds, face_rate, kernel, peak_rss, disk, throughput)


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def spread(values: list[float], unit: str = "x", digits: int = 2) -> str:
    """Median and range: ``1.42x (1.38-1.51, 5 rounds)``."""
    def f(v: float) -> str:
        return f"{v:.{digits}f}"

    if len(values) == 1:
        return f"{f(values[0])}{unit} (1 round)"
    return (f"{f(statistics.median(values))}{unit} ({f(min(values))}-{f(max(values))}, "
            f"{len(values)} rounds)")


def end_to_end_rows(m: Measurements) -> list[Row]:
    """End to end against the decode floor, per worker count, and the scaling."""
    frames, rows = m.dataset.frames, []
    for workers in WORKERS:
        ratios = [r.e2e[workers] / r.floor[workers] for r in m.rounds]
        fps = [frames / r.e2e[workers] for r in m.rounds]
        rows += [
            Row("1", f"end to end (mesti preprocess), {_workers(workers)}",
                spread(fps, " frames/s", 0)),
            Row("1", f"decode floor, {_workers(workers)}",
                spread([frames / r.floor[workers] for r in m.rounds], " frames/s", 0)),
            Row("1", f"end to end / decode floor, {_workers(workers)}", spread(ratios),
                f"<= {FLOOR_RATIO_MAX:g}x", statistics.median(ratios) <= FLOOR_RATIO_MAX),
        ]
    one, two = WORKERS
    scaling = [r.e2e[one] / r.e2e[two] for r in m.rounds]
    rows += [Row("2", "end to end, 2 workers / 1 worker (speedup)", spread(scaling),
                 f">= {SCALING_MIN:g}x", statistics.median(scaling) >= SCALING_MIN),
             Row("2", "decode floor, 2 workers / 1 worker (speedup)",
                 spread([r.floor[one] / r.floor[two] for r in m.rounds]))]
    return rows


def rerun_rows(m: Measurements) -> list[Row]:
    """A modalities-only knob change against the full run, and the fixed cost of a run."""
    most = max(WORKERS)
    fraction = [r.rerun / r.e2e[most] for r in m.rounds]
    rows = [Row("3", f"modalities knob re-run / full run, {_workers(most)}",
                spread([100 * f for f in fraction], "%", 0),
                f"<= {100 * RERUN_FRACTION_MAX:.0f}%",
                statistics.median(fraction) <= RERUN_FRACTION_MAX)]
    for workers in WORKERS:
        share = statistics.median(r.fixed[workers] / r.e2e[workers] for r in m.rounds)
        rows.append(Row("4", f"fixed cost of a run (start, imports, models, stop), "
                             f"{_workers(workers)}",
                        f"{spread([r.fixed[workers] for r in m.rounds], ' s')}; "
                        f"{100 * share:.0f}% of the run"))
    return rows


def recipe_rows(m: Measurements) -> list[Row]:
    """The usual recipe at equal cores, per detector."""
    most, rows = max(WORKERS), []
    for detector, target in RECIPE_SPEEDUP_MIN.items():
        speedup = [r.recipe[detector] / r.e2e[most] for r in m.rounds]
        rows += [
            Row("5", f"usual recipe ({detector} per frame, crops via JPEG files, numpy "
                     f"dynamic image), {most} processes",
                spread([m.dataset.frames / r.recipe[detector] for r in m.rounds],
                       " frames/s", 0) + f", face on {100 * m.recipe_face_rate[detector]:.0f}%"),
            Row("5", f"speedup over the {detector} recipe, {_workers(most)} each",
                spread(speedup), f">= {target:g}x", statistics.median(speedup) >= target),
        ]
    return rows


def kernel_rows(m: Measurements) -> list[Row]:
    """The MESTI kernel against the memory bound and numpy float64."""
    k = m.kernel

    def ms(name: str) -> str:
        return f"{k[name].best_ms:.3f} ms (median {k[name].median_ms:.3f}, n={k[name].repeats})"

    bound = k["kernel"].best_ms / k["copy"].best_ms
    return [
        Row("6", "MESTI kernel, one 60x224x224x3 uint8 clip", ms("kernel")),
        Row("6", "memory bound: np.copyto of the clip's bytes", ms("copy")),
        Row("6", "numpy float64 np.tensordot", ms("tensordot")),
        Row("6", "kernel / memory bound (best times)", f"{bound:.2f}x",
            f"<= {KERNEL_BOUND_RATIO_MAX:g}x", bound <= KERNEL_BOUND_RATIO_MAX),
        Row("6", "tensordot / kernel (best times)",
            f"{k['tensordot'].best_ms / k['kernel'].best_ms:.1f}x"),
    ]


def memory_rows(m: Measurements) -> list[Row]:
    """Per-worker peak RSS at two dataset sizes, and the faces store's bytes per frame."""
    (small, small_peaks), (large, large_peaks) = sorted(m.peak_rss.items())
    growth = max(large_peaks) / max(small_peaks)
    return [
        Row("7", f"peak RSS per worker, {small} clips",
            ", ".join(f"{v:.0f} MiB" for v in small_peaks)),
        Row("7", f"peak RSS per worker, {large} clips",
            ", ".join(f"{v:.0f} MiB" for v in large_peaks)),
        Row("7", f"largest peak, {large} / {small} clips", f"{growth:.2f}x",
            f"flat (<= {MEMORY_GROWTH_MAX:.2f}x)", growth <= MEMORY_GROWTH_MAX),
        Row("7", "faces store on disk per frame", f"{m.disk_per_frame / 1024:.0f} KiB "
            f"(a 224x224x3 frame is {224 * 224 * 3 / 1024:.0f} KiB)"),
    ]


def training_rows(m: Measurements) -> list[Row]:
    """MEGANet training throughput on the CPU (bench/training.py has every model)."""
    from mesti.train.run import TrainConfig

    default = TrainConfig().input_size
    return [Row("8", f"MEGANet training, {size}x{size} input, batch 16"
                + (" (default size)" if size == default else " (the sample's size)"),
                f"{rate:.0f} images/s") for size, rate in sorted(m.train_images_per_s.items())]


def rows(m: Measurements) -> list[Row]:
    return [*end_to_end_rows(m), *rerun_rows(m), *recipe_rows(m), *kernel_rows(m),
            *memory_rows(m), *training_rows(m)]


def raw_rounds(m: Measurements) -> str:
    """Every round's seconds, as measured (a Markdown table)."""
    header = ["round", *(f"floor {w}w" for w in WORKERS), *(f"preprocess {w}w" for w in WORKERS),
              f"re-run {max(WORKERS)}w", *(f"fixed {w}w" for w in WORKERS),
              *(f"recipe {d} {max(WORKERS)}p" for d in RECIPE_SPEEDUP_MIN)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, r in enumerate(m.rounds, 1):
        cells = [str(i), *(f"{r.floor[w]:.2f}" for w in WORKERS),
                 *(f"{r.e2e[w]:.2f}" for w in WORKERS), f"{r.rerun:.2f}",
                 *(f"{r.fixed[w]:.2f}" for w in WORKERS),
                 *(f"{r.recipe[d]:.2f}" for d in RECIPE_SPEEDUP_MIN)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(m: Measurements) -> list[str]:
    """How each row was measured, for RESULTS.md."""
    d = m.dataset
    generated = "reused from an earlier run" if d.generate_s is None else \
        f"generated in {d.generate_s:.0f} s"
    return [
        f"Input: {d.clips} clips x {d.frames_per_clip} frames ({d.frames} frames) of 640x480 "
        f"colour JPEG from pipeline.sample.generator ({generated}; the manifest of all "
        f"{2 * d.clips} clips built in {d.manifest_s:.2f} s, not counted). Frames are in the "
        "page cache.",
        "Each round runs, back to back: for 1 then 2 workers the decode floor, the end-to-end "
        "run and the fixed cost; then the re-run and both recipes. A row's figure is the "
        "median over rounds of the ratio taken within each round, with its range.",
        "1: end to end is run_preprocess (mesti preprocess) from the manifest into fresh "
        "stores with the default knobs and ClusterOptions(workers=N): wall clock including "
        "the LocalCluster's start and stop. The floor is the same LocalCluster "
        "(pipeline.runner.cluster.dask_client) mapping bench.tasks.decode_clip (np.fromfile + "
        "cv2.imdecode of every frame) over the clips, start and stop included.",
        "3: run_preprocess on the 2-worker stores with modalities.apex_policy=middle, which "
        "changes every modality key and no faces key: as dvc repro runs it after that edit.",
        "4: a LocalCluster started, every worker importing the stages and making MediaPipe's "
        "models and the Numba kernels (bench.tasks.warm_worker), stopped.",
        "5: bench/baseline.py on a spawn process pool of as many processes as the pipeline "
        "has workers, pool start and detector creation included.",
        "6: time.perf_counter around single calls after a warm-up; best and median shown, "
        "ratios of best times.",
        "7: ru_maxrss of each worker process (client.run) after run_preprocess, on a fresh "
        "cluster per size; disk bytes of the faces store over its frames.",
    ]


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (the paths' defaults left out)."""
    words = [".venv/bin/python", "-m", "bench.run", "--clips", str(args.clips),
             "--frames", str(args.frames), "--rounds", str(args.rounds),
             "--repeats", str(args.repeats)]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write RESULTS.md (labelled a smoke run below the default size)."""
    args = parse_args(argv)
    started = time.perf_counter()
    smoke = args.clips < DEFAULT_CLIPS or args.frames < DEFAULT_FRAMES
    about = machine()
    if os.getloadavg()[0] > 0.5:
        say(f"load average {os.getloadavg()[0]:.2f} before starting: other processes are "
            "running, so timings (and ratios) will be noisy")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as scratch:
        m = measure_all(args, Path(scratch))
    about["load average at end"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    result = rows(m)
    title = "SMOKE RUN (numbers not representative)" if smoke else "Benchmark"
    print(f"\n{title}: {m.dataset.clips} clips x {m.dataset.frames_per_clip} frames\n")
    print(table(result))
    elapsed = time.perf_counter() - started
    say(f"done in {elapsed:.0f} s")
    if not args.no_results:
        dataset = (f"{m.dataset.clips} synthetic CASME II-layout clips x "
                   f"{m.dataset.frames_per_clip} frames, 640x480 JPEG")
        args.results.write_text(results_markdown(
            command=command(args), smoke=smoke, dataset=dataset, rows=result, about=about,
            notes=[*notes(m), f"The whole benchmark took {elapsed:.0f} s."],
            raw=raw_rounds(m)))
        say(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
