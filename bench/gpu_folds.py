"""``python bench/gpu_folds.py``: MEGANet's MEGC 2019 LOSO on one GPU, 1 vs K folds at once.

    python bench/gpu_folds.py --concurrent 1 8 --epochs 2      # on a GPU machine

A synthetic table of the MEGC 2019 composite's shape (442 clips of 68 subjects, 224 px
uint8 images, three classes) is trained fold by fold under LOSO (68 folds) with the
trainer's own fold code (``train/folds.py``: uint8 clips made float per batch, kept on the
device when they fit, CUDA determinism settings), by K spawned processes sharing the GPU,
each taking every K-th fold. Prints, per K: wall time, training images per second, and the
wall time the paper's 50 epochs would take at that rate. This measures cost, not accuracy.

It runs from a plain checkout where only torch, numpy, yaml and matplotlib are installed
(a bare GPU machine): the store reader and the stage modules the trainer imports but this
script never calls are stood in for, and ``mesti.train`` is found in the checkout. Where the
project is installed, ``python -m bench.train_scale --device cuda`` runs the same protocol
through ``mesti train``'s Dask path instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, its folder would shadow the standard library (bench/profile.py)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
MEGC = ((24, 145), (28, 133), (16, 164))  # subjects, clips: CASME II, SAMM, SMIC-HS


def _import_trainer() -> None:
    """Make ``mesti.train`` importable from the checkout, without the pipeline's
    dependencies when they are missing."""
    try:
        import mesti.train.folds  # installed
        return
    except ImportError:
        pass
    for name in [n for n in sys.modules if n == "mesti" or n.startswith("mesti.")]:
        del sys.modules[name]
    mesti = types.ModuleType("mesti")
    mesti.__path__ = [str(ROOT / "mesti"), str(ROOT)]
    sys.modules["mesti"] = mesti
    pipeline = types.ModuleType("mesti.pipeline")
    pipeline.__path__ = []
    sys.modules["mesti.pipeline"] = pipeline
    for room in ("stores", "pooling"):
        package = types.ModuleType(f"mesti.pipeline.{room}")
        package.__path__ = []
        sys.modules[package.__name__] = package
    stubs = {"stores.read": ("open_store",), "pooling.weights": ("dynamic_tvm",),
             "figures": ("save_figure",)}
    for module, names in stubs.items():
        stub = types.ModuleType(f"mesti.pipeline.{module}")
        for name in names:
            setattr(stub, name, _unavailable)
        sys.modules[stub.__name__] = stub


def _unavailable(*args, **kwargs):
    raise RuntimeError("not available in this benchmark")


def table(seed: int = 0, size: int = 224):
    """Images (N, size, size, 3) uint8, labels, subjects of the MEGC-shaped composite."""
    import numpy as np

    rng = np.random.default_rng(seed)
    subjects, labels = [], []
    for dataset, (n_subjects, clips) in enumerate(MEGC):
        subjects += [f"{dataset}/s{n % n_subjects:02d}" for n in range(clips)]
        labels += [n % 3 for n in range(clips)]
    images = rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    return images, np.array(labels), np.array(subjects)


def worker(rank: int, every: int, epochs: int, input_size: int, batch: int, where: str,
           queue, block: tuple[str, ...] = (), first: int = 0) -> None:
    """Train folds rank, rank + every, ... on the GPU; put (images trained, seconds)."""
    for name in block:  # a check of the bare-machine path on a full install
        sys.modules[name] = None
    _import_trainer()
    import torch
    from mesti.train import protocols
    from mesti.train.config import TrainConfig
    from mesti.train.data import ClipImages
    from mesti.train.determinism import deterministic
    from mesti.train.folds import fit_fold

    images, labels, subjects = table()
    folds = protocols.loso(subjects)
    config = TrainConfig(epochs=epochs, input_size=input_size, batch_size=batch,
                         device=where, figure_clips=0)
    device = torch.device(where)
    x, y = ClipImages(images, input_size), torch.from_numpy(labels)
    seen = 0
    started = time.perf_counter()
    with deterministic(True, 1):
        for number in range(rank, first or len(folds), every):
            fit_fold(config, x, y, folds[number], number, 3, device, lambda row: None)
            seen += epochs * len(folds[number].train)
        if device.type == "cuda":
            torch.cuda.synchronize()
    queue.put((seen, time.perf_counter() - started, torch.cuda.max_memory_allocated(device)
               / 2**20 if device.type == "cuda" else 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/gpu_folds.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--folds", type=int, default=0, help="only the first N folds [all]")
    parser.add_argument("--block", nargs="*", default=[],
                        help="modules to treat as missing (checks the bare-machine path)")
    args = parser.parse_args(argv)
    os.environ.update({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"})
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    print(f"MEGANet LOSO, {args.folds or 68} of the 68 folds of the MEGC 2019 shape "
          f"(442 clips), {args.device}, {args.input_size} px, "
          f"batch {args.batch_size}, {args.epochs} epoch(s) per fold", flush=True)
    print("| folds at once | wall s (incl. start) | images/s | MiB per fold (max) | "
          "50 epochs, extrapolated |\n|---|---|---|---|---|", flush=True)
    for every in args.concurrent:
        queue = context.Queue()
        started = time.perf_counter()
        processes = [context.Process(target=worker, args=(rank, every, args.epochs,
                                                          args.input_size, args.batch_size,
                                                          args.device, queue,
                                                          tuple(args.block), args.folds))
                     for rank in range(every)]
        for process in processes:
            process.start()
        results = []
        while len(results) < len(processes):
            try:
                results.append(queue.get(timeout=5))
            except Exception:  # queue.Empty: is a process dead?
                if any(p.exitcode not in (None, 0) for p in processes):
                    raise SystemExit("a fold process failed (its traceback is above)") from None
        for process in processes:
            process.join()
        wall = time.perf_counter() - started
        images = sum(r[0] for r in results)
        training = max(r[1] for r in results)
        rate = images / training
        folds = args.folds or 68
        print(f"| {every} | {wall:.1f} | {rate:.0f} | {max(r[2] for r in results):.0f} | "
              f"{images * 50 / args.epochs / rate / 60 * 68 / folds:.1f} min |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
