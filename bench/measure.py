"""The measurements: each function runs one experiment and returns plain numbers.

Wall-clock times include what a user waits for: starting the LocalCluster (workers are
spawned processes that import their task's modules), the work, and closing it. The decode
floor and the memory probe run on the pipeline's own LocalCluster (``dask_client``), set
up exactly as the stages' is, so the ratio measures what the pipeline adds over reading
the frames. Every run checks that every clip was processed,
so a failure cannot pass for speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mesti.datasets_manifest.manifest import read_manifest
from mesti.pipeline.faces import FacesConfig
from mesti.pipeline.kernels import weighted_sum
from mesti.pipeline.run import ClusterOptions, dask_client, run_faces, run_modalities
from mesti.pipeline.stages import ModalitiesConfig
from mesti.pipeline.weights import mesti

from .tasks import decode_clip, peak_rss_mb
from .training import training_throughput  # noqa: F401  (bench.run's item 7)

KERNEL_SHAPE = (60, 224, 224, 3)   # one CASME II-length clip of aligned faces


@dataclass(frozen=True)
class EndToEnd:
    """One end-to-end run (manifest -> faces store -> modality store)."""

    workers: int
    faces_s: float
    modalities_s: float
    faces_store: Path
    modalities_store: Path

    @property
    def total_s(self) -> float:
        return self.faces_s + self.modalities_s


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call, in milliseconds."""

    best_ms: float
    median_ms: float
    repeats: int


def _expect(metrics: dict, clips: int, stage: str) -> None:
    """Fail unless the stage computed every clip (none reused, none failed)."""
    if metrics["clips_ok"] != clips:
        raise RuntimeError(f"{stage}: {metrics['clips_ok']} of {clips} clips computed: {metrics}")


def end_to_end(manifest: Path, scratch: Path, workers: int) -> EndToEnd:
    """Both stages with the default knobs on ``workers`` workers, into fresh stores."""
    clips = len(read_manifest(manifest))
    faces_store = scratch / f"faces-{workers}w.zarr"
    modalities_store = scratch / f"modalities-{workers}w.zarr"
    cluster = ClusterOptions(workers=workers, progress=False)
    started = time.perf_counter()
    _expect(run_faces(manifest, faces_store, FacesConfig(), cluster), clips, "faces")
    faces_done = time.perf_counter()
    _expect(run_modalities(faces_store, modalities_store, ModalitiesConfig(), cluster), clips,
            "modalities")
    return EndToEnd(workers, faces_done - started, time.perf_counter() - faces_done,
                    faces_store, modalities_store)


def decode_floor(manifest: Path, workers: int) -> float:
    """Seconds to read and decode every frame of the manifest, one task per clip."""
    records = read_manifest(manifest)
    paths = [[str(Path(r.root) / r.source / name) for name in r.frames] for r in records]
    started = time.perf_counter()
    with dask_client(ClusterOptions(workers=workers)) as client:
        decoded = sum(client.gather(client.map(decode_clip, paths, pure=False)))
    elapsed = time.perf_counter() - started
    if decoded != sum(len(p) for p in paths):
        raise RuntimeError(f"decode floor: {decoded} of {sum(map(len, paths))} frames decoded")
    return elapsed


def modality_rerun(run: EndToEnd, clips: int) -> float:
    """Seconds to redo the modalities stage after one knob changed (apex_policy -> middle).

    The changed knob changes every clip's modality key, so every clip is recomputed from
    the faces store while the faces stage does not run at all.
    """
    config = ModalitiesConfig(apex_policy="middle")
    started = time.perf_counter()
    metrics = run_modalities(run.faces_store, run.modalities_store, config,
                             ClusterOptions(workers=run.workers, progress=False))
    elapsed = time.perf_counter() - started
    _expect(metrics, clips, "modalities re-run")
    return elapsed


def faces_peak_rss(manifest: Path, store: Path, workers: int) -> list[float]:
    """Each worker's peak RSS (MiB) after the faces stage over ``manifest``, ascending.

    The stage runs on a cluster started here (passed by address, as for a remote cluster)
    so the workers can be asked for their high-water mark once it has finished.
    """
    clips = len(read_manifest(manifest))
    with dask_client(ClusterOptions(workers=workers)) as client:
        options = ClusterOptions(scheduler=client.scheduler.address, progress=False)
        _expect(run_faces(manifest, store, FacesConfig(), options), clips, "faces")
        peaks = client.run(peak_rss_mb)
    return sorted(peaks.values())


def repeat(call: Callable[[], object], repeats: int) -> Timing:
    """Time ``call`` ``repeats`` times after one warm-up call (JIT, caches, page faults)."""
    call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return Timing(1e3 * min(samples), 1e3 * statistics.median(samples), repeats)


def kernel_timings(repeats: int) -> dict[str, Timing]:
    """The MESTI kernel on one clip against a copy of its bytes and numpy float64 tensordot.

    The copy (``np.copyto`` into a preallocated array) reads the clip once and writes it
    once: the memory-bandwidth bound of any pass over the clip. tensordot is the usual
    numpy pooling; it converts the uint8 frames to float64 on the way, and is slow enough
    that a tenth of the repeats suffice.
    """
    clip = np.random.default_rng(0).integers(0, 256, KERNEL_SHAPE, dtype=np.uint8)
    weights = mesti(KERNEL_SHAPE[0], KERNEL_SHAPE[0] // 2)
    copy = np.empty_like(clip)
    return {
        "kernel": repeat(lambda: weighted_sum(clip, weights), repeats),
        "copy": repeat(lambda: np.copyto(copy, clip), repeats),
        "tensordot": repeat(lambda: np.tensordot(weights, clip, axes=1),
                            max(repeats // 10, 3)),
    }


def loso_fold_seconds(store: Path, params: Path) -> tuple[float, int, str]:
    """Seconds to train and test the first LOSO fold with params.yaml's train section.

    Returns (seconds, training clips, fold name).
    """
    import torch
    from mesti.train import protocols
    from mesti.train.data import load_clips, to_tensor
    from mesti.train.run import TrainConfig, fit_fold

    from mesti.params import load_section

    config = load_section(TrainConfig, params, "train")
    table = load_clips([str(store)], config.modality, config.labels)
    fold = protocols.loso(table.subjects)[0]
    started = time.perf_counter()
    x, y = to_tensor(table.images, config.input_size), torch.from_numpy(table.labels)
    fit_fold(config, x, y, fold, 0, len(table.classes), torch.device("cpu"), lambda row: None)
    return time.perf_counter() - started, len(fold.train), fold.name
