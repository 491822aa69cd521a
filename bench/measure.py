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
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.pooling.kernels import weighted_sum
from mesti.pipeline.pooling.weights import mesti
from mesti.pipeline.runner.cluster import ClusterOptions, dask_client
from mesti.pipeline.runner.run import run_preprocess
from mesti.pipeline.runner.stages import ModalitiesConfig

from .tasks import decode_clip, peak_rss_mb, warm_worker

KERNEL_SHAPE = (60, 224, 224, 3)   # one CASME II-length clip of aligned faces


@dataclass(frozen=True)
class EndToEnd:
    """One end-to-end run (manifest -> faces and modality stores, one pass, one pool)."""

    workers: int
    seconds: float
    faces_store: Path
    modalities_store: Path


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call, in milliseconds."""

    best_ms: float
    median_ms: float
    repeats: int


def _expect(metrics: dict, clips: int, stage: str, status: str = "clips_ok") -> None:
    """Fail unless the stage computed (or reused) every clip, none failed."""
    if metrics[status] != clips:
        raise RuntimeError(f"{stage}: {metrics[status]} of {clips} clips {status}: {metrics}")


def end_to_end(manifest: Path, scratch: Path, workers: int) -> EndToEnd:
    """``mesti preprocess`` with the default knobs on ``workers`` workers, into fresh stores."""
    clips = len(read_manifest(manifest))
    faces_store = scratch / f"faces-{workers}w.zarr"
    modalities_store = scratch / f"modalities-{workers}w.zarr"
    cluster = ClusterOptions(workers=workers, progress=False)
    started = time.perf_counter()
    metrics = run_preprocess(manifest, faces_store, modalities_store, FacesConfig(),
                             ModalitiesConfig(), cluster)
    elapsed = time.perf_counter() - started
    _expect(metrics["faces"], clips, "faces")
    _expect(metrics["modalities"], clips, "modalities")
    return EndToEnd(workers, elapsed, faces_store, modalities_store)


def decode_floor(manifest: Path, workers: int, grey: bool = False) -> float:
    """Seconds to read and decode every frame of the manifest, one task per clip, on the
    pipeline's own LocalCluster (started and stopped inside the time, as the pipeline's is).
    ``grey`` decodes one-channel files as grey, as the pipeline does."""
    records = read_manifest(manifest)
    paths = [[str(Path(r.root) / r.source / name) for name in r.frames] for r in records]
    started = time.perf_counter()
    with dask_client(ClusterOptions(workers=workers)) as client:
        decoded = sum(client.gather(client.map(decode_clip, paths, grey=grey, pure=False)))
    elapsed = time.perf_counter() - started
    if decoded != sum(len(p) for p in paths):
        raise RuntimeError(f"decode floor: {decoded} of {sum(map(len, paths))} frames decoded")
    return elapsed


def modality_rerun(run: EndToEnd, manifest: Path) -> float:
    """Seconds for ``mesti preprocess`` after one modalities knob changed (apex_policy ->
    middle), as ``dvc repro`` runs it: every faces clip is reused (its key recomputed from
    the input bytes, nothing decoded) and every modality clip recomputed from the faces
    store. The stores are put back to the default knobs afterwards by the next round."""
    clips = len(read_manifest(manifest))
    started = time.perf_counter()
    metrics = run_preprocess(manifest, run.faces_store, run.modalities_store, FacesConfig(),
                             ModalitiesConfig(apex_policy="middle"),
                             ClusterOptions(workers=run.workers, progress=False))
    elapsed = time.perf_counter() - started
    _expect(metrics["faces"], clips, "faces re-run", "clips_reused")
    _expect(metrics["modalities"], clips, "modalities re-run")
    return elapsed


def fixed_cost(workers: int) -> float:
    """Seconds a run pays whatever its size: start the LocalCluster, import the stage's
    modules and make its models in every worker, stop the cluster."""
    started = time.perf_counter()
    with dask_client(ClusterOptions(workers=workers)) as client:
        client.run(warm_worker)
    return time.perf_counter() - started


def peak_rss_and_disk(manifest: Path, scratch: Path, workers: int) -> tuple[list[float], float]:
    """Each worker's peak RSS (MiB) after preprocessing ``manifest``, ascending, and the faces
    store's bytes on disk per frame.

    The run goes to a cluster started here (passed by address, as for a remote cluster)
    so the workers can be asked for their high-water mark once it has finished.
    """
    records = read_manifest(manifest)
    faces_store = scratch / f"faces-rss-{len(records)}.zarr"
    with dask_client(ClusterOptions(workers=workers)) as client:
        options = ClusterOptions(scheduler=client.scheduler.address, progress=False)
        metrics = run_preprocess(manifest, faces_store, scratch / f"modalities-rss-"
                                 f"{len(records)}.zarr", FacesConfig(), ModalitiesConfig(),
                                 options)
        _expect(metrics["faces"], len(records), "faces")
        peaks = client.run(peak_rss_mb)
    disk = sum(p.stat().st_size for p in faces_store.rglob("*") if p.is_file())
    return sorted(peaks.values()), disk / sum(r.n_frames for r in records)


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
