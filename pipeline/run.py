"""Orchestration: the faces and modalities stages over a Dask cluster, one task per clip.

This is the only module that imports Dask. The client sends paths and small records, the
workers read frames and write their clips' groups themselves, and only a short status per
clip comes back. By default a LocalCluster sized to the machine (one single-threaded worker
process per core); ``scheduler`` or ``scheduler_file`` connect to any Dask deployment
(``dask scheduler``/``dask worker``, dask-jobqueue on SLURM or PBS, ...) whose workers
see the same paths. ``workers=0`` runs in this process without Dask, for debugging.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from datasets_manifest.manifest import read_manifest

from . import store
from .faces import FacesConfig, model_checksum
from .reader import open_store
from .stages import ModalitiesConfig, faces_clip, modalities_clip


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run (command-line options, not knobs: they change no output)."""

    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = None      # LocalCluster size; default one per core; 0: no Dask
    progress: bool = True


def run_faces(manifest: Path, out: Path, config: FacesConfig,
              cluster: ClusterOptions = ClusterOptions()) -> dict:
    """Align every manifest clip into the faces store ``out``; return the stage metrics."""
    started = time.perf_counter()
    records = read_manifest(manifest)
    dataset = records[0].dataset if records else ""
    context = {"versions": store.versions("mediapipe", "opencv-contrib-python"),
               "model_sha256": model_checksum()}
    out = out.resolve()
    store.open_for_writing(out, "faces", {"dataset": dataset, "source": str(manifest),
                                          "params": asdict(config), **context})
    tasks = []
    for record in records:
        row = asdict(record)
        row["root"] = str(Path(record.root).resolve())
        tasks.append(row)
    statuses = _map(faces_clip, tasks, cluster, "faces", store_path=str(out), config=config,
                    context=context)
    metrics = _finish(out, [r.clip_id for r in records], statuses, started)
    found = metrics["clips_ok"] + metrics["clips_reused"]
    faceless = metrics["failures"].get("no_face", 0)
    metrics["face_detection_rate"] = round(found / max(found + faceless, 1), 4)
    counts = manifest.parent / "counts.json"
    if counts.is_file():
        metrics["clips_excluded"] = json.loads(counts.read_text())["clips_excluded"]
    return metrics


def run_modalities(faces: Path, out: Path, config: ModalitiesConfig,
                   cluster: ClusterOptions = ClusterOptions()) -> dict:
    """Compute every clip's modality images from a faces store into ``out``."""
    started = time.perf_counter()
    source = open_store(faces)
    context = {"versions": store.versions("numba")}
    out = out.resolve()
    store.open_for_writing(out, "modalities", {
        "dataset": source.attrs.get("dataset", ""), "source": str(faces),
        "params": asdict(config), "images": config.names, **context})
    statuses = _map(modalities_clip, source.clip_ids, cluster, "modalities",
                    faces_path=str(Path(faces).resolve()), store_path=str(out), config=config,
                    context=context)
    metrics = _finish(out, source.clip_ids, statuses, started)
    errors = [abs(s["apex_estimate_error"]) for s in statuses
              if s.get("apex_estimate_error") is not None]
    metrics["apex_estimate_mae_frames"] = round(sum(errors) / len(errors), 2) if errors else None
    metrics["apex_policy_used"] = dict(Counter(s["apex_policy_used"] for s in statuses
                                               if "apex_policy_used" in s))
    return metrics


def _finish(out: Path, clip_ids: list[str], statuses: list[dict], started: float) -> dict:
    failed = [s for s in statuses if s["status"] == "failed"]
    failed_ids = {s["clip_id"] for s in failed}
    keep = [c for c in clip_ids if c not in failed_ids]
    broken = store.finalise(out, keep, {"failures": failed})
    if broken:
        raise RuntimeError(f"{out}: clips written but unreadable after the run: {broken}")
    counts = Counter(s["status"] for s in statuses)
    return {
        "clips": len(clip_ids), "clips_ok": counts["ok"], "clips_reused": counts["reused"],
        "clips_failed": counts["failed"],
        "failures": dict(Counter(s["code"] for s in failed)),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _map(function: Callable[..., dict], items: list, cluster: ClusterOptions, label: str,
         **kwargs) -> list[dict]:
    """function(item, **kwargs) for every item, on the cluster, with a progress bar."""
    bar = tqdm(total=len(items), desc=label, unit="clip", disable=not cluster.progress)
    results = []
    with bar:
        if cluster.workers == 0:
            for item in items:
                results.append(function(item, **kwargs))
                bar.update()
            return results
        with _client(cluster) as client:
            from distributed import as_completed

            futures = client.map(function, items, pure=False, **kwargs)
            for future in as_completed(futures):
                results.append(future.result())  # a bug in a task stops the run here
                bar.update()
    return results


@contextmanager
def _client(cluster: ClusterOptions) -> Iterator:
    from distributed import Client, LocalCluster

    if cluster.scheduler or cluster.scheduler_file:
        with Client(cluster.scheduler, scheduler_file=cluster.scheduler_file) as client:
            yield client
        return
    workers = cluster.workers or os.cpu_count() or 1
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield client
