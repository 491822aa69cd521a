"""Orchestration: the faces, modalities and sequences stages over Dask, one task per clip.

The client sends paths and small records, the workers read frames and write their clips'
groups themselves, and only a short status per clip comes back. Where the tasks run (a
LocalCluster, a scheduler, a batch queue, or this process) is ``cluster.py``'s.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mesti.datasets_manifest.licences import licence
from mesti.datasets_manifest.manifest import read_manifest
from tqdm import tqdm

from ..faces.align import ATTEMPTS, FacesConfig, model_checksum
from ..pooling.apex import ESTIMATORS
from ..sample.generator import TRUTH_NAME
from ..stores import write as store
from ..stores.read import open_store
from .cluster import ClusterOptions, dask_client
from .sequences import SequencesConfig, sequences_clip
from .stages import ModalitiesConfig, faces_clip, modalities_clip, preprocess_clip

# The modules whose code decides each stage's output (hashed into every clip's key).
FACES_CODE = tuple(f"mesti.pipeline.{m}"
                   for m in ("faces.align", "faces.decode", "runner.stages", "stores.write",
                             "stores.keys"))
MODALITIES_CODE = tuple(f"mesti.pipeline.{m}"
                        for m in ("pooling.apex", "pooling.kernels", "pooling.weights",
                                  "runner.stages", "stores.write", "stores.keys",
                                  "motion.active", "motion.flow", "motion.images",
                                  "motion.magnify"))
SEQUENCES_CODE = tuple(f"mesti.pipeline.{m}"
                       for m in ("runner.sequences", "faces.align", "stores.write", "stores.keys",
                                 "motion.flow", "faces.landmarks68", "motion.sampling"))


@dataclass(frozen=True)
class StageOutputs:
    """Where a stage reports, and when it counts as failed."""

    metrics: Path | None = None
    failures: Path | None = None
    max_failure_fraction: float = 1.0


class StageFailed(RuntimeError):
    """More clips failed than the bound allows (the store and reports are still written)."""


class EmptyInput(store.WriteRefused):
    """A stage was given nothing to do; it refuses rather than empty its store."""


def run_faces(manifest: Path, out: Path, config: FacesConfig,
              cluster: ClusterOptions = ClusterOptions(),
              outputs: StageOutputs = StageOutputs(), prune: bool = False) -> dict:
    """Align every manifest clip into the faces store ``out``; return the stage metrics.

    ``out`` must be absent, an empty folder or a faces store (else NotOwned); one run
    writes it at a time (else StoreLocked). Clips of ``out`` that are not in the manifest
    are kept, unlisted, unless ``prune``. An empty manifest is refused (EmptyInput).
    """
    started = time.perf_counter()
    out = Path(out).resolve()
    records, tasks = _manifest_input(manifest, out)
    with store.writer_lock(out, "faces"):
        context = _open_faces(out, manifest, records, config)[0]
        statuses = _map(faces_clip, tasks, cluster, "faces", key=lambda row: row["clip_id"],
                        store_path=str(out), config=config, context=context)
        metrics = _finish(out, [r.clip_id for r in records], statuses, started, prune)
    return _report("faces", _faces_metrics(metrics, out, manifest), statuses, outputs)


def run_modalities(faces: Path, out: Path, config: ModalitiesConfig,
                   cluster: ClusterOptions = ClusterOptions(),
                   outputs: StageOutputs = StageOutputs(), prune: bool = False) -> dict:
    """Compute every clip's modality images from a faces store into ``out``.

    Refuses, before writing, what ``run_faces`` refuses, a ``faces`` that is not a faces
    store and one with no clip. A faces clip that is missing, unreadable or whose content key
    no longer matches its attributes (edited by hand) is that clip's failure.
    """
    started = time.perf_counter()
    out = Path(out).resolve()
    clip_ids, attrs = _faces_input(faces, out, "modalities")
    with store.writer_lock(out, "modalities"):
        context = _open_modalities(out, faces, attrs, config)
        statuses = _map(modalities_clip, clip_ids, cluster, "modalities", key=str,
                        faces_path=str(Path(faces).resolve()), store_path=str(out),
                        config=config, context=context)
        metrics = _finish(out, clip_ids, statuses, started, prune)
    return _report("modalities", _modalities_metrics(metrics, out), statuses, outputs)


def run_preprocess(manifest: Path, faces_out: Path, modalities_out: Path,
                   faces_config: FacesConfig, modalities_config: ModalitiesConfig,
                   cluster: ClusterOptions = ClusterOptions(),
                   faces_outputs: StageOutputs = StageOutputs(),
                   modalities_outputs: StageOutputs = StageOutputs(),
                   prune: bool = False) -> dict[str, dict]:
    """The faces and modalities stages in one pass per clip, on one pool.

    Each clip's files are read once, decoded, aligned and equalised, and its modality
    images are computed from the frames in memory; both stores, their content keys and
    reports are those of ``run_faces`` followed by ``run_modalities`` (a test checks
    byte equality). A clip whose faces key is unchanged is not decoded: its modalities
    are reused, or recomputed from the faces store when only their knobs changed. Both
    stores are checked and locked before anything is written. Returns both metrics.
    """
    started = time.perf_counter()
    given = faces_out  # the modality store names its source as the user gave it
    faces_out, modalities_out = Path(faces_out).resolve(), Path(modalities_out).resolve()
    if faces_out == modalities_out:
        raise store.WriteRefused(f"{faces_out}: the faces and modality stores must differ")
    records, tasks = _manifest_input(manifest, faces_out)
    store.check_owned(modalities_out, "modalities")
    with store.writer_lock(faces_out, "faces"), \
            store.writer_lock(modalities_out, "modalities"):
        faces_context, faces_attrs = _open_faces(faces_out, manifest, records, faces_config)
        modalities_context = _open_modalities(modalities_out, given, faces_attrs,
                                              modalities_config)
        both = _map(preprocess_clip, tasks, cluster, "preprocess",
                    key=lambda row: row["clip_id"], faces_path=str(faces_out),
                    modalities_path=str(modalities_out), faces_config=faces_config,
                    modalities_config=modalities_config, faces_context=faces_context,
                    modalities_context=modalities_context)
        faces_statuses = [_faces_status(s) for s in both]
        faces_metrics = _finish(faces_out, [r.clip_id for r in records], faces_statuses,
                                started, prune)
        modality_statuses = [s["modalities"] for s in both if s.get("modalities")]
        modality_metrics = _finish(modalities_out, [s["clip_id"] for s in modality_statuses],
                                   modality_statuses, started, prune)
    reports = {"faces": (_faces_metrics(faces_metrics, faces_out, manifest),
                         faces_statuses, faces_outputs),
               "modalities": (_modalities_metrics(modality_metrics, modalities_out),
                              modality_statuses, modalities_outputs)}
    over = []
    for stage, report in reports.items():  # both reports are written before either fails
        try:
            _report(stage, *report)
        except StageFailed as error:
            over.append(error)
    if over:
        raise over[0]
    return {stage: report[0] for stage, report in reports.items()}


def _faces_status(both: dict) -> dict:
    """A fused task's faces status, or an infrastructure failure that took both stages."""
    return both["faces"] if "faces" in both else both


def _manifest_input(manifest: Path, out: Path) -> tuple[list, list[dict]]:
    """The manifest's records and one task row per clip (absolute roots), after refusing a
    bad manifest, an ``out`` the faces stage does not own and an empty manifest."""
    records = read_manifest(manifest)  # a bad manifest is named before the store is looked at
    store.check_owned(out, "faces")
    if not records:
        raise EmptyInput(f"{manifest}: the manifest lists no clip; nothing to do, and {out} "
                         "is left as it is")
    tasks = []
    for record in records:
        row = asdict(record)
        row["root"] = str(Path(record.root).resolve())
        tasks.append(row)
    return records, tasks


def _open_faces(out: Path, manifest: Path, records: list,
                config: FacesConfig) -> tuple[dict, dict]:
    """Write the faces store's root attributes; return the context every clip's key takes,
    and those attributes."""
    dataset = records[0].dataset
    # the generated sample leaves its truth file beside the dataset folder it wrote
    synthetic = any((folder / TRUTH_NAME).is_file() for folder in
                    (Path(records[0].root), Path(records[0].root).parent))
    context = {"versions": store.versions("mediapipe", "opencv-contrib-python",
                                          code=FACES_CODE),
               "model_sha256": model_checksum()}
    attrs = {"dataset": dataset, "source": str(manifest), "licence": licence(dataset, synthetic),
             "params": asdict(config), **context}
    store.open_for_writing(out, "faces", attrs)
    return context, attrs


def _open_modalities(out: Path, faces: Path, faces_attrs: dict,
                     config: ModalitiesConfig) -> dict:
    """Write the modality store's root attributes; return the context of every clip's key."""
    context = {"versions": store.versions("numba", "opencv-contrib-python",
                                          code=MODALITIES_CODE)}
    store.open_for_writing(out, "modalities", {
        "dataset": faces_attrs.get("dataset", ""), "source": str(faces),
        "licence": faces_attrs.get("licence") or licence(faces_attrs.get("dataset", "")),
        "params": asdict(config), "images": config.names, **context})
    return context


def _faces_metrics(metrics: dict, out: Path, manifest: Path) -> dict:
    """Detection rates over every clip the store lists (reused ones too, from their
    attributes), so the metrics describe the store, not which clips this run redid."""
    faceless = sum(metrics["failures"].get(c, 0) for c in ("no_face", "several_faces"))
    with open_store(out) as written:
        by = Counter(written.clip_attrs(c).get("detector") for c in written.clip_ids)
    found = sum(by.values())
    metrics["face_detection_rate"] = round(found / max(found + faceless, 1), 4)
    metrics["face_detection_by_attempt"] = {
        a: round(by[a] / max(found + faceless, 1), 4) for a in ATTEMPTS}
    counts = Path(manifest).parent / "counts.json"
    if counts.is_file():
        metrics["clips_excluded"] = json.loads(counts.read_text())["clips_excluded"]
    return metrics


def _modalities_metrics(metrics: dict, out: Path) -> dict:
    """The apex policy used and each apex estimator's error against the annotation, over
    every clip the store lists (README, "Apex estimators")."""
    errors: dict[str, list[int]] = {name: [] for name in ESTIMATORS}
    chosen, used = [], Counter()
    with open_store(out) as written:
        for clip_id in written.clip_ids:
            attrs = written.clip_attrs(clip_id)
            used[attrs["apex_policy_used"]] += 1
            if attrs["apex"] not in attrs["frame_numbers"]:
                continue  # no annotated apex to measure against
            annotated = attrs["frame_numbers"].index(attrs["apex"])
            chosen.append(abs(attrs["apex_estimate_index"] - annotated))
            for name, index in attrs.get("apex_estimates", {}).items():
                errors[name].append(abs(index - annotated))
    metrics["apex_estimate_mae_frames"] = round(sum(chosen) / len(chosen), 2) if chosen else None
    for name, found in errors.items():
        metrics[f"apex_{name}_mae_frames"] = round(sum(found) / len(found), 2) if found else None
        metrics[f"apex_{name}_within_2"] = (round(sum(e <= 2 for e in found) / len(found), 3)
                                            if found else None)
    metrics["apex_policy_used"] = dict(sorted(used.items()))
    return metrics


def _faces_input(faces: Path, out: Path, kind: str) -> tuple[list[str], dict]:
    """The clip ids and root attributes of the faces store a derived stage reads, after refusing,
    before anything is written, an ``out`` the stage does not own, an input that is not a
    faces store, and one with no clip."""
    store.check_owned(out, kind)
    with open_store(faces) as source:
        if source.kind != "faces":
            raise store.WriteRefused(f"{faces}: a {source.kind} store; {kind} are computed "
                                     "from a faces store (mesti faces)")
        clip_ids, attrs = source.clip_ids, dict(source.attrs)
    if not clip_ids:
        raise EmptyInput(f"{faces}: the faces store lists no clip; nothing to do, and {out} "
                         "is left as it is")
    return clip_ids, attrs


def run_sequences(faces: Path, out: Path, config: SequencesConfig,
                  cluster: ClusterOptions = ClusterOptions(),
                  outputs: StageOutputs = StageOutputs(), prune: bool = False) -> dict:
    """Write every clip's sampled grey frames, landmarks and flows from a faces store, under
    the same refusals and failures as :func:`run_modalities`."""
    started = time.perf_counter()
    out = Path(out).resolve()
    clip_ids, attrs = _faces_input(faces, out, "sequences")
    with store.writer_lock(out, "sequences"):
        context = {"versions": store.versions("mediapipe", "opencv-contrib-python",
                                              code=SEQUENCES_CODE),
                   "model_sha256": model_checksum()}
        store.open_for_writing(out, "sequences", {
            "dataset": attrs.get("dataset", ""), "source": str(faces),
            "licence": attrs.get("licence") or licence(attrs.get("dataset", "")),
            "params": asdict(config), **context})
        statuses = _map(sequences_clip, clip_ids, cluster, "sequences", key=str,
                        faces_path=str(Path(faces).resolve()), store_path=str(out),
                        config=config, context=context)
        metrics = _finish(out, clip_ids, statuses, started, prune)
    done = [s for s in statuses if s["status"] == "ok"]
    meshes = sum(s["meshes"] for s in done)
    flows = sum(s["flows"] for s in done)
    metrics["mesh_ms_per_frame"] = (round(1000 * sum(s["mesh_seconds"] for s in done) / meshes,
                                          2) if meshes else None)
    metrics["flow_ms_per_pair"] = (round(1000 * sum(s["flow_seconds"] for s in done) / flows, 1)
                                   if flows else None)
    metrics["seconds_per_clip"] = (round(sum(s["seconds"] for s in done) / len(done), 3)
                                   if done else None)
    return _report("sequences", metrics, statuses, outputs)


FAILURE_COLUMNS = ("clip_id", "stage", "code", "message", "attempts")
# What one run did, not what its store holds: written to the untracked *.timing.json.
RUN_COUNTERS = ("clips_ok", "clips_reused", "clips_pruned")


def _report(stage: str, metrics: dict, statuses: list[dict], outputs: StageOutputs) -> dict:
    """Write the metrics and the failures table, then enforce the failure bound."""
    if outputs.metrics:
        outputs.metrics.parent.mkdir(parents=True, exist_ok=True)
        # timings, and counters of what this run did rather than what the store holds,
        # differ run to run (a forced re-run recomputes clips another reused): beside the
        # metrics, not in them, since DVC locks the metrics
        timing = {k: v for k, v in metrics.items()
                  if "seconds" in k or "_ms_" in k or k in RUN_COUNTERS}
        tracked = {k: v for k, v in metrics.items() if k not in timing}
        outputs.metrics.write_text(json.dumps(tracked, indent=2) + "\n")
        outputs.metrics.with_suffix(".timing.json").write_text(json.dumps(timing) + "\n")
    if outputs.failures:
        outputs.failures.parent.mkdir(parents=True, exist_ok=True)
        with outputs.failures.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FAILURE_COLUMNS)
            writer.writeheader()
            for status in statuses:
                if status["status"] == "failed":
                    writer.writerow({**{k: status.get(k) for k in FAILURE_COLUMNS},
                                     "stage": stage})
    fraction = metrics["clips_failed"] / max(metrics["clips"], 1)
    if fraction > outputs.max_failure_fraction:
        raise StageFailed(f"{stage}: {metrics['clips_failed']} of {metrics['clips']} clips "
                          f"failed ({fraction:.0%}), over --max-failure-fraction "
                          f"{outputs.max_failure_fraction}; see {outputs.failures or 'the store'}")
    return metrics


def _finish(out: Path, clip_ids: list[str], statuses: list[dict], started: float,
            prune: bool) -> dict:
    failed = [s for s in statuses if s["status"] == "failed"]
    failed_ids = {s["clip_id"] for s in failed}
    keep = [c for c in clip_ids if c not in failed_ids]
    done = store.finalise(out, keep, {"failures": failed}, in_manifest=clip_ids, prune=prune)
    for line in done["foreign"]:
        print(line, file=sys.stderr)
    if done["broken"]:
        raise RuntimeError(f"{out}: clips marked ok but without their arrays after the run "
                           f"(left out of the store's clips): {done['broken']}")
    counts = Counter(s["status"] for s in statuses)
    return {
        "clips": len(clip_ids), "clips_ok": counts["ok"], "clips_reused": counts["reused"],
        "clips_failed": counts["failed"],
        "failures": dict(Counter(s["code"] for s in failed)),
        "clips_pruned": done["pruned"], "clips_unlisted": done["unlisted"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def _map(function: Callable[..., dict], items: list, cluster: ClusterOptions, label: str,
         key: Callable[[object], str], **kwargs) -> list[dict]:
    """function(item, **kwargs) for every item, on the cluster, with a progress bar.

    A worker that dies mid-task has its task retried on another worker (Dask does this);
    an item that kills ``distributed.scheduler.allowed-failures`` + 1 workers is quarantined
    as an ``infrastructure`` failure and the rest goes on. Any exception a task raises is a
    bug and stops the run.
    """
    bar = tqdm(total=len(items), desc=label, unit="clip", disable=not cluster.progress)
    results = []
    with bar:
        if cluster.workers == 0:
            for item in items:
                results.append(function(item, **kwargs))
                bar.update()
            return results
        with dask_client(cluster) as client:
            import dask
            from distributed import KilledWorker, as_completed

            futures = client.map(function, items, pure=False, **kwargs)
            item_of = {future.key: item for future, item in zip(futures, items, strict=True)}
            attempts = dask.config.get("distributed.scheduler.allowed-failures") + 1
            done = {}
            for future in as_completed(futures):
                try:
                    done[future.key] = future.result()  # a bug in a task stops the run here
                except KilledWorker:
                    done[future.key] = {
                        "clip_id": key(item_of[future.key]), "status": "failed",
                        "code": "infrastructure", "attempts": attempts,
                        "message": f"its worker died on all {attempts} attempts; quarantined"}
                bar.update()
    # in the items' order, whatever order they finished in: the stores list their clips, and
    # the failures tables their rows, in manifest order on any cluster
    return [done[future.key] for future in futures]
