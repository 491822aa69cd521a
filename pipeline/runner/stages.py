"""One clip's work in each stage: what a Dask task runs. Paths in, a small status out.

A task decides for itself whether its clip is already done: the clip's content key (a
sha256 of its manifest fields, the stage parameters, the package versions, the model
checksum and the checksum of its inputs) is compared with the one in the store. Data
problems (missing or undecodable frames, no face) come back as a failed status and the
batch goes on; any other exception is a bug and stops the run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path

import cv2
import numpy as np

from ..faces import align as faces
from ..faces.decode import ClipError, ClipInput, clip_folder, read_input
from ..motion.flow import SCALINGS, TVL1Params
from ..motion.images import MOTION_IMAGES, FlowImages, motion_images
from ..motion.magnify import MagnifyParams, magnify
from ..pooling import apex as apex_policy
from ..pooling.kernels import flat_tolerance, to_uint8, weighted_sum
from ..pooling.weights import VARIANTS, weights
from ..stores import keys
from ..stores import write as store
from ..stores.read import open_store

_MODELS: dict[float, faces.FaceModels] = {}


def _models(min_confidence: float) -> faces.FaceModels:
    if min_confidence not in _MODELS:
        _MODELS[min_confidence] = faces.FaceModels(min_confidence)
    return _MODELS[min_confidence]


def faces_clip(record: dict, store_path: str, config: faces.FacesConfig,
               context: dict) -> dict:
    """Align and equalise one manifest clip into the faces store."""
    return _faces(record, store_path, config, context)[0]


def _faces(record: dict, store_path: str, config: faces.FacesConfig,
           context: dict) -> tuple[dict, tuple[np.ndarray, np.ndarray, dict] | None]:
    """The clip's status, and its frames, mesh and attributes when they were just computed
    (None when the store's clip was reused or the clip failed)."""
    cv2.setNumThreads(1)
    started = time.perf_counter()
    clip_id = record["clip_id"]
    clip = {k: record[k] for k in keys.MANIFEST_FIELDS}
    try:
        path = clip_folder(clip_id, record["root"], record["source"], record["frames"],
                           record["kind"])
    except ClipError as error:
        return failed(error), None
    source = read_input(clip_id, record["kind"], path, record["frames"])
    key = keys.faces_key(clip, asdict(config), context["versions"], context["model_sha256"],
                          source.sha256)
    if store.existing_key(Path(store_path), clip_id) == key:
        return {"clip_id": clip_id, "status": "reused"}, None
    try:
        frames, found = _align(clip_id, record, source, config)
    except ClipError as error:
        return failed(error), None
    except faces.DetectorError as error:
        return failed(ClipError(clip_id, "detector_crash", str(error))), None
    attrs = {**clip, "n_frames": len(frames), "face_box": list(found["box"]),
             "face_score": found["score"], "detector": found["attempt"],
             "faces_found": found["n_faces"], "transform": found["matrix"].tolist(),
             "face_roll": round(found["roll"], 2),
             "detector_roll": round(found["detector_roll"], 2),
             "interocular_px": round(found["interocular_px"], 2),
             "face_drift": round(found["drift"], 3),
             "provenance": {"params": asdict(config), **context,
                            "input_sha256": source.sha256}}
    store.write_clip(Path(store_path), clip_id,
                     {"frames": frames, "landmarks": found["landmarks"]}, attrs, key,
                     compress=False)
    status = {"clip_id": clip_id, "status": "ok", "detector": found["attempt"],
              "seconds": time.perf_counter() - started}
    return status, (frames, found["landmarks"], {**attrs, "content_key": key})


def preprocess_clip(record: dict, faces_path: str, modalities_path: str,
                    faces_config: faces.FacesConfig, modalities_config: ModalitiesConfig,
                    faces_context: dict, modalities_context: dict) -> dict:
    """One pass over one clip: its faces, then its modality images from the frames still
    in memory. A reused faces clip's modalities are reused, or recomputed from the faces
    store without decoding or aligning anything. Returns each stage's status (the
    modalities' None when the faces failed: that stage has no such clip)."""
    status, fresh = _faces(record, faces_path, faces_config, faces_context)
    if status["status"] == "failed":
        return {"faces": status, "modalities": None}
    if fresh is None:
        return {"faces": status, "modalities": modalities_clip(
            record["clip_id"], faces_path, modalities_path, modalities_config,
            modalities_context, faces_complete=False)}
    frames, mesh, attrs = fresh
    started = time.perf_counter()
    key = _modalities_key(attrs, modalities_config, modalities_context)
    if store.existing_key(Path(modalities_path), record["clip_id"]) == key:
        done = {"clip_id": record["clip_id"], "status": "reused"}
    else:
        done = _write_modalities(record["clip_id"], frames, mesh, attrs, key, modalities_path,
                                 modalities_config, modalities_context, started)
    return {"faces": status, "modalities": done}


def failed(error: ClipError) -> dict:
    return {"clip_id": error.clip_id, "status": "failed", "code": error.code,
            "message": error.message, "attempts": 1}


def _align(clip_id: str, record: dict, source: ClipInput,
           config: faces.FacesConfig) -> tuple[np.ndarray, dict]:
    models = _models(config.min_confidence)
    stream = source.iter_frames(config.max_frame_pixels)
    onset_bgr = next(stream)
    # MediaPipe wants RGB; a grey clip is warped and equalised as grey (a third of the
    # work, the same values: tests/test_one_pass.py)
    to_rgb = cv2.COLOR_GRAY2RGB if onset_bgr.ndim == 2 else cv2.COLOR_BGR2RGB
    onset = cv2.cvtColor(onset_bgr, to_rgb)
    if min(onset.shape[:2]) < faces.MIN_SIDE:
        raise ClipError(clip_id, "no_face", f"the onset frame is {onset.shape[1]}x"
                        f"{onset.shape[0]}: too small to hold a detectable face")
    rejected = []  # attempts whose face the mesh found no landmarks on: the next is tried
    for detection in faces.detections(onset, models, config.upscale):
        if config.dominant_face and detection.runner_up * config.dominant_face > 1:
            raise ClipError(clip_id, "several_faces",
                            f"{detection.n_faces} faces on the onset frame and the second is "
                            f"{detection.runner_up:.0%} of the largest; cannot tell which to "
                            "follow")
        points = faces.landmarks(onset, detection.box, models, detection.roll, turns=True)
        if points is not None:
            break
        rejected.append(f"{detection.attempt} (detector roll {detection.roll:.0f} degrees)")
    else:
        if rejected:
            raise ClipError(clip_id, "no_face", "face found but no landmarks on the onset "
                            f"frame (attempts with a face: {', '.join(rejected)}; all quarter "
                            "turns tried)")
        raise ClipError(clip_id, "no_face", "no face found on the onset frame (attempts: "
                        f"{', '.join(faces.ATTEMPTS)}; threshold {config.min_confidence})")
    interocular = faces.interocular_pixels(points)
    matrix = faces.alignment(points, config)
    roll = faces.eye_roll(points)
    count = len(record["frames"])
    numbers = record["frame_numbers"]
    apex = numbers.index(record["apex"]) if record["apex"] in numbers else count // 2
    checks = {apex, count - 1} - {0}   # frames where the face is looked for again
    drift = 0.0
    out = np.empty((count, config.size, config.size, 3), np.uint8)
    for t, frame in enumerate(chain([onset_bgr], stream)):  # warp BGR, convert only the crop
        if frame.shape != onset_bgr.shape:
            raise ClipError(clip_id, "decode_error",
                            f"frame {record['frames'][t]} is {frame.shape[1]}x{frame.shape[0]}, "
                            f"the onset frame {onset.shape[1]}x{onset.shape[0]}")
        rgb = cv2.cvtColor(frame, to_rgb) if t in checks or config.stabilise else None
        if t in checks:
            found = faces.attempt_faces(rgb, models, detection.attempt, config.upscale)
            moved = faces.drift(detection.face, found, detection.face.interocular)
            drift = max(drift, moved)
            _check_drift(clip_id, record["frames"][t], moved, config)
        m = faces.stabilised(matrix, points, rgb, detection.box, models,
                             roll) if config.stabilise and t else matrix
        crop = faces.warp(frame, m, config.size)
        # a grey crop is equalised as its own luma and fills every channel
        out[t] = faces.equalise(crop, config, "BGR").reshape(config.size, config.size, -1)
    return out, {"box": detection.box, "score": detection.score, "attempt": detection.attempt,
                 "n_faces": detection.n_faces, "matrix": matrix, "roll": roll,
                 "detector_roll": detection.roll, "interocular_px": interocular, "drift": drift,
                 "landmarks": faces.transform_points(points, matrix).astype(np.float32)}


def _check_drift(clip_id: str, frame: str, moved: float, config: faces.FacesConfig) -> None:
    """A face that left the frame fails the clip; one that moved more than ``max_drift``
    fails it too, unless ``stabilise`` re-fits every frame and so follows it."""
    if moved == float("inf"):
        raise ClipError(clip_id, "face_drift", f"the onset's face is not found on frame {frame}: "
                        "it left the frame or turned away")
    if moved > config.max_drift and not config.stabilise:
        raise ClipError(clip_id, "face_drift",
                        f"the face moved {moved:.2f} inter-ocular distances by frame {frame}, "
                        f"over max_drift {config.max_drift} (stabilise: true follows it)")


@dataclass(frozen=True)
class ModalitiesConfig:
    """Knobs of the modalities stage (params.yaml section ``modalities``)."""

    variants: tuple[str, ...] = VARIANTS
    apex_frame: bool = True
    apex_policy: str = "annotation"   # annotation | middle | estimate
    apex_fallback: str = "middle"     # where ``annotation`` finds none: middle | estimate
    apex_smoothing: int = 5           # frames averaged by the estimate
    apex_estimator: str = "region_difference"  # apex.ESTIMATORS; chosen by its error (README)
    motion: tuple[str, ...] = ()      # motion images (pipeline/motion/images.py MOTION_IMAGES)
    flow_size: int = 128              # side of the grey crops Dual TV-L1 runs on
    flow_scaling: str = "minmax"      # minmax (the peers) | fixed (keeps zero and magnitude)
    flow_bound: float = 2.0           # fixed scaling: u, v clipped at +-flow_bound pixels
    strain_bound: float = 0.5         # fixed scaling: strain clipped at strain_bound
    tvl1: TVL1Params = field(default_factory=TVL1Params)  # OpenCV Dual TV-L1 (its defaults)
    magnify: bool = False             # Eulerian magnification of the frames before all else
    magnification: MagnifyParams = field(default_factory=MagnifyParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "motion", tuple(self.motion))
        for name, kind in (("tvl1", TVL1Params), ("magnification", MagnifyParams)):
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    object.__setattr__(self, name, kind(**value))
                except TypeError as error:
                    raise ValueError(f"{name}: {error}") from error
        unknown = set(self.variants) - set(VARIANTS)
        if unknown or not self.variants:
            raise ValueError(f"variants must be a non-empty subset of {VARIANTS}")
        if set(self.motion) - set(MOTION_IMAGES):
            raise ValueError(f"motion must be a subset of {MOTION_IMAGES}")
        if self.flow_scaling not in SCALINGS or self.flow_size < 8:
            raise ValueError(f"flow_scaling must be one of {SCALINGS} and flow_size >= 8")
        if self.apex_policy not in apex_policy.POLICIES:
            raise ValueError(f"apex_policy must be one of {apex_policy.POLICIES}")
        if self.apex_estimator not in apex_policy.ESTIMATORS:
            raise ValueError(f"apex_estimator must be one of {apex_policy.ESTIMATORS}")
        if self.apex_fallback not in ("middle", "estimate"):
            raise ValueError("apex_fallback must be middle or estimate")

    @property
    def names(self) -> list[str]:
        return [*self.variants, *(["apex_frame"] if self.apex_frame else []), *self.motion]

    @property
    def flow_images(self) -> FlowImages:
        return FlowImages(self.flow_size, self.flow_scaling, self.flow_bound, self.strain_bound,
                          self.tvl1)


def upstream_problem(attrs: dict) -> str | None:
    """Why a faces clip must not be used: not finished, or its content key is not the one
    recomputed from its attributes and recorded input checksum (an attribute such as a
    label was edited after it was written). None when it is sound."""
    if attrs.get("status") != "ok":
        return f"faces clip status {attrs.get('status')!r}, not 'ok'"
    try:
        recomputed = keys.recompute_key("faces", attrs)
    except KeyError as error:
        return f"cannot recompute the faces clip's content key: {error.args[0]}"
    if recomputed != attrs.get("content_key"):
        return ("the faces clip's content_key is not the one recomputed from its attributes "
                "and input checksum: an attribute (a label?) was edited after it was written; "
                "re-run mesti faces on that clip")
    return None


def upstream_attrs(source, clip_id: str) -> dict | ClipError:
    """A faces clip's attributes, or the named failure of a downstream stage that must not
    use it (its group is missing or unreadable, or it fails :func:`upstream_problem`)."""
    try:
        attrs = source.clip_attrs(clip_id)
    except Exception as error:  # group deleted or its zarr.json unreadable: this clip only
        return ClipError(clip_id, "upstream_missing", f"listed in the faces store, but its "
                         f"group is missing or unreadable ({type(error).__name__}: {error})")
    problem = upstream_problem(attrs)
    return ClipError(clip_id, "upstream_key_mismatch", problem) if problem else attrs


def faces_arrays(source, clip_id: str) -> tuple[np.ndarray, np.ndarray] | ClipError:
    """A faces clip's frames and onset mesh, or the named failure when a chunk is corrupt."""
    try:
        return source.frames(clip_id), source.landmarks(clip_id)
    except Exception as error:  # a corrupt chunk: checksum or decompression failure
        return ClipError(clip_id, "decode_error",
                         f"faces store chunk unreadable ({type(error).__name__}: {error})")


def modalities_clip(clip_id: str, faces_path: str, store_path: str, config: ModalitiesConfig,
                    context: dict, faces_complete: bool = True) -> dict:
    """MESTI, dynamic images, the apex frame and motion images of one clip of a faces store
    (one being written by this run when not ``faces_complete``: its finished clips only)."""
    cv2.setNumThreads(1)  # one level of parallelism: Dask across clips
    started = time.perf_counter()
    source = open_store(faces_path, require_complete=faces_complete)
    if not faces_complete:
        _admit_finished(source, faces_path, clip_id)
    attrs = upstream_attrs(source, clip_id)
    if isinstance(attrs, ClipError):
        return failed(attrs)
    key = _modalities_key(attrs, config, context)
    if store.existing_key(Path(store_path), clip_id) == key:
        return {"clip_id": clip_id, "status": "reused"}
    arrays = faces_arrays(source, clip_id)
    if isinstance(arrays, ClipError):
        return failed(arrays)
    frames, mesh = arrays
    return _write_modalities(clip_id, frames, mesh, attrs, key, store_path, config, context,
                             started)


def _admit_finished(source, faces_path: str, clip_id: str) -> None:
    """Let ``source``, a faces store this run is writing, read ``clip_id`` when its group is
    finished on disk. The root's clip list is only rewritten when a run ends: a clip reused
    from a killed run, or one that left the manifest and came back, is finished but not
    listed there, and its modalities must be computed all the same."""
    if clip_id not in source.clip_ids and store.finished(Path(faces_path), clip_id, "faces"):
        source.clip_ids.append(clip_id)


def _modalities_key(faces_attrs: dict, config: ModalitiesConfig, context: dict) -> str:
    return keys.modalities_key(faces_attrs["content_key"],
                                {k: faces_attrs[k] for k in keys.MODALITY_FIELDS},
                                asdict(config), context["versions"])


def _write_modalities(clip_id: str, frames: np.ndarray, mesh: np.ndarray, attrs: dict,
                      key: str, store_path: str, config: ModalitiesConfig, context: dict,
                      started: float) -> dict:
    """Compute one clip's modality images from its aligned frames and write them."""
    params = asdict(config)
    copied = {k: attrs[k] for k in keys.MODALITY_FIELDS}
    if config.magnify:
        frames = np.clip(np.rint(magnify(frames, config.magnification)), 0, 255).astype(np.uint8)
    numbers = attrs["frame_numbers"]
    annotated = numbers.index(attrs["apex"]) if attrs["apex"] in numbers else None
    estimates = apex_policy.estimates(frames, mesh, config.apex_smoothing)
    estimated = estimates[config.apex_estimator]
    apex, used = apex_policy.choose(config.apex_policy, len(frames), annotated, estimated,
                                    config.apex_fallback)
    images, lows, highs = [], [], []
    for variant in config.variants:
        w = weights(variant, len(frames), apex + 1)
        image, lo, hi = to_uint8(weighted_sum(frames, w), flat_tolerance(w))
        images.append(image)
        lows.append(lo)
        highs.append(hi)
    if config.apex_frame:
        images.append(frames[apex])
        lows.append(None)
        highs.append(None)
    for image, lo, hi in motion_images(frames, apex, config.motion, config.flow_images):
        images.append(image)
        lows.append(lo)
        highs.append(hi)
    out_attrs = {**copied, "images": config.names, "lo": lows, "hi": highs,
                 "apex_index": apex, "apex_policy_used": used, "apex_estimate_index": estimated,
                 "apex_estimate_error": None if annotated is None else estimated - annotated,
                 "apex_estimates": estimates,
                 "faces_key": attrs["content_key"],
                 "provenance": {"params": params, **context}}
    store.write_clip(Path(store_path), clip_id, {"images": np.stack(images)}, out_attrs, key,
                     per_image=("images",))
    return {"clip_id": clip_id, "status": "ok", "seconds": time.perf_counter() - started}
