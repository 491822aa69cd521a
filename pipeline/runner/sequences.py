"""The sequences stage: sampled grey frames, per-frame 68-point landmarks and flows per clip.

The sequence models (FDP, CYF-cuber/FDP; MOL, CYF-cuber/MOL) train on a few aligned grey
frames of each window: FDP on 8 frames at stride floor(L/8) at 64x64, MOL on every phase
of that sampling at 144x144 (cropped to 128), with 68 landmarks per frame in crop
coordinates, the inter-pupil distance its landmark loss divides by, and the Dual TV-L1
flows between consecutive sampled frames. Each lab recomputes these per fold; this stage
computes them once from a faces store (never from raw frames), keyed like every stage.

Landmarks: MediaPipe's face mesh on each sampled aligned crop (the face is already found
and aligned, so only the mesh runs), read as the 68-point convention
(pipeline/faces/landmarks68.py); the onset frame reuses the faces stage's fit. A frame
where the mesh finds no face takes the onset's landmarks and is listed in the clip's
``landmarks_fallback`` attribute. The spec of the store is cache/README.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..faces import align as faces
from ..faces.decode import ClipError
from ..faces.landmarks68 import pupil_distance, to_68
from ..motion.flow import TVL1Params, tvl1_flow
from ..motion.sampling import SAMPLINGS, blend, positions
from ..stores import keys
from ..stores import write as store
from ..stores.read import open_store
from .stages import faces_arrays, failed, upstream_attrs

DIMENSIONS = {"frames": ("phase", "frame", "y", "x"), "positions": ("phase", "frame"),
              "landmarks": ("phase", "frame", "point", "xy"),
              "pupil_distance": ("phase", "frame"), "flow": ("phase", "step", "y", "x", "uv")}


@dataclass(frozen=True)
class SequencesConfig:
    """Knobs of the sequences stage (params.yaml section ``sequences``)."""

    size: int = 144                # side of the stored grey frames (MOL 144, FDP 64)
    sampling: str = "uniform"      # uniform | all | interpolate
    length: int = 8                # frames per phase (uniform, interpolate)
    flow: bool = False             # Dual TV-L1 flow between consecutive sampled frames
    tvl1: TVL1Params = field(default_factory=TVL1Params)

    def __post_init__(self) -> None:
        if isinstance(self.tvl1, dict):
            try:
                object.__setattr__(self, "tvl1", TVL1Params(**self.tvl1))
            except TypeError as error:
                raise ValueError(f"tvl1: {error}") from error
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.size < 8 or self.length < 2:
            raise ValueError("size must be at least 8 and length at least 2")


def to_size(points: np.ndarray, source: int, size: int) -> np.ndarray:
    """Pixel coordinates in a ``source`` square crop mapped to the same crop resized to
    ``size`` (pixel centres aligned, as cv2.resize does)."""
    return (points + 0.5) * (size / source) - 0.5


def mesh_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The box (x, y, w, h) around mesh points, the region faces.landmarks looks in."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def frame_meshes(frames: np.ndarray, where: np.ndarray, onset_mesh: np.ndarray,
                 models: faces.FaceModels) -> tuple[dict[float, np.ndarray], list[float]]:
    """Face-mesh points of the RGB crops at each distinct window position of ``where``.

    Position 0 is the faces stage's onset fit; a position the mesh misses takes it too and
    is returned in the second list.
    """
    box = mesh_box(onset_mesh)
    found, missed = {0.0: onset_mesh[:468]}, []
    for p in sorted(set(where.ravel().tolist()) - {0.0}):
        points = faces.landmarks(blend(frames, np.array(p)), box, models)
        if points is None:
            missed.append(p)
            points = onset_mesh[:468]
        found[p] = points[:468]
    return found, missed


def sequence_arrays(frames: np.ndarray, onset_mesh: np.ndarray, config: SequencesConfig,
                    models: faces.FaceModels) -> tuple[dict[str, np.ndarray], dict]:
    """The clip's arrays (cache/README.md, sequences) and what they cost (CPU seconds)."""
    where = positions(len(frames), config.sampling, config.length)
    side = frames.shape[1]
    started = time.process_time()
    meshes, missed = frame_meshes(frames, where, onset_mesh, models)
    mesh_seconds = time.process_time() - started
    points = np.stack([to_68(meshes[p]) for p in where.ravel().tolist()])
    points = to_size(points, side, config.size).reshape(*where.shape, 68, 2)
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in blend(frames, where.ravel())])
    interpolation = cv2.INTER_AREA if config.size < side else cv2.INTER_LINEAR
    small = np.stack([cv2.resize(g, (config.size, config.size), interpolation=interpolation)
                      for g in grey]).reshape(*where.shape, config.size, config.size)
    arrays = {"frames": small, "positions": where.astype(np.float32),
              "landmarks": points.astype(np.float32),
              "pupil_distance": pupil_distance(points).astype(np.float32)}
    cost = {"meshes": len(meshes) - 1, "mesh_seconds": mesh_seconds, "flows": 0,
            "flow_seconds": 0.0, "landmarks_fallback": missed}
    if config.flow:
        started = time.process_time()
        flows = np.empty((*where.shape[:1], where.shape[1] - 1, config.size, config.size, 2),
                         np.float16)
        for phase in range(where.shape[0]):
            for t in range(where.shape[1] - 1):
                flows[phase, t] = tvl1_flow(small[phase, t], small[phase, t + 1], config.tvl1)
        arrays["flow"] = flows
        cost.update(flows=flows.shape[0] * flows.shape[1],
                    flow_seconds=time.process_time() - started)
    return arrays, cost


_MODELS: list[faces.FaceModels] = []


def sequences_clip(clip_id: str, faces_path: str, store_path: str, config: SequencesConfig,
                   context: dict) -> dict:
    """Write one clip of a faces store into the sequences store (a Dask task)."""
    cv2.setNumThreads(1)
    started = time.perf_counter()
    source = open_store(faces_path)
    attrs = upstream_attrs(source, clip_id)
    if isinstance(attrs, ClipError):
        return failed(attrs)
    copied = {k: attrs[k] for k in keys.SEQUENCE_FIELDS if k in attrs}
    params = asdict(config)
    key = keys.sequences_key(attrs["content_key"], copied, params, context["versions"])
    if store.existing_key(Path(store_path), clip_id) == key:
        return {"clip_id": clip_id, "status": "reused"}
    arrays = faces_arrays(source, clip_id)
    if isinstance(arrays, ClipError):
        return failed(arrays)
    frames, onset_mesh = arrays
    if not _MODELS:
        _MODELS.append(faces.FaceModels())
    try:
        arrays, cost = sequence_arrays(frames, onset_mesh, config, _MODELS[0])
    except faces.DetectorError as error:
        return failed(ClipError(clip_id, "detector_crash", f"the face mesh raised: {error}"))
    out_attrs = {**copied, "size": config.size, "sampling": config.sampling,
                 "length": config.length, "phases": int(arrays["frames"].shape[0]),
                 "landmarks_fallback": cost["landmarks_fallback"],
                 "faces_key": attrs["content_key"], "provenance": {"params": params, **context}}
    store.write_clip(Path(store_path), clip_id, arrays, out_attrs, key,
                     dimensions={k: DIMENSIONS[k] for k in arrays})
    return {"clip_id": clip_id, "status": "ok", "seconds": time.perf_counter() - started,
            **{k: cost[k] for k in ("meshes", "mesh_seconds", "flows", "flow_seconds")}}
