"""Face detection and alignment: one similarity transform per clip, from its onset frame.

Micro-motions are one to three pixels, and cropping every frame on its own adds jitter
larger than that. So the face is found once, on the onset frame, face-mesh landmarks are
taken there, and one transform (eyes level, fixed inter-ocular distance, fixed output size)
is applied to every frame of the clip, as MEB does with RetinaFace. Optional stabilisation
re-fits each frame's rigid landmarks (eye corners, nose bridge) to the onset's for clips with
head motion.

Detection tries, in order (``ATTEMPTS``), until one finds a face above ``min_confidence``
on which the face mesh finds landmarks (a face the mesh rejects sends it on to the next):
``short`` (MediaPipe's short-range model, faces filling much of the frame), ``full`` (the
full-range model, faces down to about 15 pixels between the eyes), ``upscaled`` (the
full-range model on overlapping tiles ``1/upscale`` of the frame: MediaPipe resizes whatever
it is given to its 128- or 192-pixel input, so enlarging the whole frame changes nothing,
while a tile shows the model its faces ``upscale`` times larger). The face mesh runs on a
crop levelled by the detector's eye keypoints; since those keypoints are unreliable beyond
about 45 degrees of roll, the four quarter turns of that crop are ranked by the short-range
detector's score and the mesh is tried on them in that order.

MediaPipe 0.10.21's wheel carries the models, so nothing is downloaded. Its native log
lines (TFLite's XNNPACK notice, ``inference_feedback_manager.cc``, ...) are dropped unless
``MESTI_VERBOSE`` is set (``mesti -v``).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

EQUALISE = ("none", "luma", "clahe")
ATTEMPTS = ("short", "full", "upscaled")
LEFT_EYE = (33, 133)     # outer and inner corner in face-mesh numbering (image left)
RIGHT_EYE = (362, 263)
RIGID = (33, 133, 362, 263, 168, 6, 197, 195)  # eye corners and nose bridge
VERBOSE_ENV = "MESTI_VERBOSE"  # set (e.g. by ``mesti -v``) to keep MediaPipe's own log lines
MESH_SIDE = 256          # pixels of the square crop the face mesh runs on


@dataclass(frozen=True)
class FacesConfig:
    """Knobs of the faces stage (params.yaml section ``faces``)."""

    size: int = 224
    interocular: float = 0.30     # eye-centre distance as a fraction of ``size``
    eye_line: float = 0.38        # height of the eye line as a fraction of ``size``
    equalise: str = "luma"        # none | luma (equalise Y of YCrCb) | clahe (on Y)
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    min_confidence: float = 0.5
    upscale: float = 2.0          # magnification of the tiled last attempt (1: no such attempt)
    dominant_face: float = 2.0    # the largest face must be this many times the next in area
    stabilise: bool = False
    max_drift: float = 0.5        # face motion by the apex / last frame, inter-ocular units
    max_frame_pixels: int = 40_000_000  # larger frames fail by name before being decoded

    def __post_init__(self) -> None:
        if self.equalise not in EQUALISE:
            raise ValueError(f"equalise must be one of {EQUALISE}, got {self.equalise!r}")
        checks = {"size >= 32": self.size >= 32, "interocular > 0": self.interocular > 0,
                  "0 < eye_line < 1": 0 < self.eye_line < 1, "clahe_clip > 0": self.clahe_clip > 0,
                  "clahe_tiles >= 1": self.clahe_tiles >= 1,
                  "0 <= min_confidence <= 1": 0 <= self.min_confidence <= 1,
                  "upscale >= 1": self.upscale >= 1, "dominant_face >= 0": self.dominant_face >= 0,
                  "max_frame_pixels >= 1024": self.max_frame_pixels >= 1024,
                  "max_drift > 0": self.max_drift > 0}
        bad = [rule for rule, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid faces settings: {', '.join(bad)} must hold")


class DetectorError(RuntimeError):
    """MediaPipe raised on an input (kept apart from the project's own bugs)."""


MIN_SIDE = 32  # pixels: MediaPipe's short-range model sees 128x128; smaller frames hold no face


@dataclass(frozen=True)
class Face:
    """One detector hit, in frame pixels."""

    box: tuple[float, float, float, float]   # x, y, width, height
    score: float
    keypoints: np.ndarray                    # (6, 2): eyes (image left, right), nose, mouth, ears

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def eyes_middle(self) -> np.ndarray:
        return self.keypoints[:2].mean(axis=0)

    @property
    def interocular(self) -> float:
        return float(np.hypot(*(self.keypoints[1] - self.keypoints[0])))

    @property
    def roll(self) -> float:
        """Angle of the eye line in degrees (0: level; image y points down)."""
        dx, dy = self.keypoints[1] - self.keypoints[0]
        return math.degrees(math.atan2(dy, dx))


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]   # x, y, width, height in frame pixels
    score: float
    attempt: str                             # which of ATTEMPTS found it
    n_faces: int
    runner_up: float                         # area of the second largest face over the largest
    roll: float = 0.0                        # detector's eye-line angle, degrees
    face: Face | None = None


_SETTLED: weakref.WeakSet = weakref.WeakSet()  # models that have logged their start-up lines


@contextmanager
def quiet_native_logs(active: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while MediaPipe's C++ code logs its start-up lines.

    Its absl/TFLite messages bypass Python and ignore GLOG_* variables once loaded, so only
    the descriptor can hold them. Used around model construction (with a warm-up call: the
    graphs start, and log, in threads) and around each model's calls until it first finds
    something (it logs once more then); exceptions still reach Python.
    """
    if not active or os.environ.get(VERBOSE_ENV):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 2)
    os.close(sink)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceModels:
    """MediaPipe detectors and face mesh, made once per worker process (not thread-safe)."""

    def __init__(self, min_confidence: float = 0.5):
        if not os.environ.get(VERBOSE_ENV):
            os.environ.setdefault("GLOG_minloglevel", "2")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with quiet_native_logs():
            import mediapipe as mp

            detection = mp.solutions.face_detection
            self.min_confidence = min_confidence
            self.short = detection.FaceDetection(min_detection_confidence=min_confidence,
                                                 model_selection=0)
            self.full = detection.FaceDetection(min_detection_confidence=min_confidence,
                                                model_selection=1)
            self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True,
                                                        max_num_faces=1)
            blank = np.zeros((64, 64, 3), np.uint8)
            for model in (self.short, self.full, self.mesh):
                model.process(blank)  # its graph starts (and logs) in threads: wait for them


def model_checksum() -> str:
    """sha256 over the MediaPipe model files this stage uses (provenance of every crop)."""
    import mediapipe

    root = Path(mediapipe.__file__).parent / "modules"
    digest = hashlib.sha256()
    for name in ("face_detection/face_detection_short_range.tflite",
                 "face_detection/face_detection_full_range_sparse.tflite",
                 "face_landmark/face_landmark.tflite"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def faces_in(image: np.ndarray, model, min_confidence: float,
             offset: tuple[float, float] = (0.0, 0.0)) -> list[Face]:
    """Every face one detector finds in an RGB image above ``min_confidence``, in pixels
    (shifted by ``offset`` when the image is a tile of a larger frame)."""
    result = _process(model, image)
    h, w = image.shape[:2]
    found = []
    for hit in result.detections or ():
        score = float(hit.score[0])
        if score < min_confidence:
            continue
        b = hit.location_data.relative_bounding_box
        box = (b.xmin * w + offset[0], b.ymin * h + offset[1], b.width * w, b.height * h)
        points = np.array([(p.x * w + offset[0], p.y * h + offset[1])
                           for p in hit.location_data.relative_keypoints])
        found.append(Face(tuple(float(v) for v in box), score, points))
    return found


def attempt_faces(image: np.ndarray, models: FaceModels, attempt: str,
                  upscale: float = 2.0) -> list[Face]:
    """The faces one attempt of ``ATTEMPTS`` finds in an RGB frame."""
    if attempt == "short":
        return faces_in(image, models.short, models.min_confidence)
    if attempt == "full":
        return faces_in(image, models.full, models.min_confidence)
    if attempt != "upscaled":
        raise ValueError(f"unknown attempt {attempt!r}; one of {ATTEMPTS}")
    if upscale <= 1:
        return []
    h, w = image.shape[:2]
    found = []
    for x, y, tw, th in tiles(w, h, upscale):
        found += faces_in(image[y:y + th, x:x + tw], models.full, models.min_confidence,
                          (float(x), float(y)))
    return merge_duplicates(found)


def tiles(width: int, height: int, upscale: float) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x, y, w, h) of side ``1/upscale`` of the frame, half a tile apart,
    covering it: a face smaller than half a tile lies whole inside one of them."""
    tw, th = max(1, round(width / upscale)), max(1, round(height / upscale))

    def starts(total: int, side: int) -> list[int]:
        count = max(1, math.ceil((total - side) / (side / 2)) + 1)
        return sorted({round(i * (total - side) / max(count - 1, 1)) for i in range(count)})

    return [(x, y, tw, th) for y in starts(height, th) for x in starts(width, tw)]


def merge_duplicates(found: list[Face], overlap: float = 0.3) -> list[Face]:
    """One face per person where overlapping tiles found it twice (the higher score kept)."""
    kept: list[Face] = []
    for face in sorted(found, key=lambda f: f.score, reverse=True):
        if all(_iou(face.box, other.box) <= overlap for other in kept):
            kept.append(face)
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detections(image: np.ndarray, models: FaceModels,
               upscale: float = 2.0) -> Iterator[Detection]:
    """The largest face of an RGB frame from each of ``ATTEMPTS`` that finds any face above
    the threshold, in order (an attempt runs only when the caller asks for the next one); the
    other faces of an attempt feed the several-faces rule.

    A caller goes on to the next attempt when a face is not confirmed: an early attempt can
    return a false face (a pattern, a poster) on which the face mesh then finds nothing,
    while a later one finds the real, smaller face.
    """
    for attempt in ATTEMPTS:
        found = sorted(attempt_faces(image, models, attempt, upscale),
                       key=lambda f: f.area, reverse=True)
        if not found:
            continue
        face = found[0]
        runner_up = found[1].area / face.area if len(found) > 1 and face.area else 0.0
        yield Detection(face.box, face.score, attempt, len(found), float(runner_up),
                        face.roll, face)


def detect(image: np.ndarray, models: FaceModels, upscale: float = 2.0) -> Detection | None:
    """The first of :func:`detections`: the largest face of the first attempt finding any."""
    return next(detections(image, models, upscale), None)


def _process(model, frame: np.ndarray):
    try:
        with quiet_native_logs(model not in _SETTLED):
            result = model.process(frame)
    except Exception as error:  # MediaPipe raises RuntimeError, ValueError, ...
        raise DetectorError(f"{type(error).__name__}: {error}") from error
    if getattr(result, "detections", None) or getattr(result, "multi_face_landmarks", None):
        _SETTLED.add(model)
    return result


def _mesh_crop(image: np.ndarray, box: tuple[float, float, float, float],
               roll: float) -> tuple[np.ndarray, np.ndarray]:
    """A square crop around ``box``, rotated by ``roll`` degrees about its centre (so a face
    whose eye line lies at ``roll`` comes out level), and the 2x3 matrix that made it."""
    x, y, w, h = box
    centre = (x + w / 2, y + h / 2)
    matrix = cv2.getRotationMatrix2D(centre, roll, MESH_SIDE / (1.8 * max(w, h)))
    matrix[:, 2] += (MESH_SIDE / 2 - centre[0], MESH_SIDE / 2 - centre[1])
    crop = cv2.warpAffine(image, matrix, (MESH_SIDE, MESH_SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    return crop, matrix


def _mesh(image: np.ndarray, box: tuple[float, float, float, float], roll: float,
          models: FaceModels) -> np.ndarray | None:
    crop, matrix = _mesh_crop(image, box, roll)
    result = _process(models.mesh, crop)
    if not result.multi_face_landmarks:
        return None
    points = np.array([(p.x * MESH_SIDE, p.y * MESH_SIDE)
                       for p in result.multi_face_landmarks[0].landmark])
    return transform_points(points, cv2.invertAffineTransform(matrix))


def landmarks(image: np.ndarray, box: tuple[float, float, float, float],
              models: FaceModels, roll: float = 0.0, turns: bool = False) -> np.ndarray | None:
    """Face-mesh landmarks (468, 2) in frame pixels, of the face inside ``box``.

    The mesh runs on a square crop around the box (so it describes the chosen face, not
    another one), levelled by ``roll`` (degrees, e.g. ``Detection.roll``). With ``turns`` the
    crop's four quarter turns are ranked by the short-range detector's score, the mesh is
    tried on each in that order (the mesh alone fits an upright face onto an upside-down
    one), and the winner is re-run levelled by its own eye line.
    """
    if not turns:
        return _mesh(image, box, roll, models)
    ranked = []
    for turn in (0, 90, 180, 270):
        crop, _ = _mesh_crop(image, box, roll + turn)
        found = faces_in(crop, models.short, 0.0)
        ranked.append((max((f.score for f in found), default=0.0), turn))
    for _, turn in sorted(ranked, key=lambda item: -item[0]):
        points = _mesh(image, box, roll + turn, models)
        if points is None:
            continue
        refined = _mesh(image, box, eye_roll(points), models)
        return points if refined is None else refined
    return None


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eye from their corners."""
    return points[list(LEFT_EYE)].mean(axis=0), points[list(RIGHT_EYE)].mean(axis=0)


def eye_roll(points: np.ndarray) -> float:
    """Angle in degrees of the face mesh's eye line (0: level, upright)."""
    left, right = eye_centres(points)
    dx, dy = right - left
    return math.degrees(math.atan2(dy, dx))


def interocular_pixels(points: np.ndarray) -> float:
    """Eye-centre distance of face-mesh landmarks: the face's effective resolution."""
    left, right = eye_centres(points)
    return float(np.hypot(*(right - left)))


def drift(onset: Face, faces: list[Face], interocular: float) -> float:
    """How far the face moved from ``onset``, in inter-ocular distances: the eye midpoint of
    the nearest face in ``faces`` (inf when there is none: the face left the frame)."""
    if not faces:
        return math.inf
    return min(float(np.hypot(*(f.eyes_middle - onset.eyes_middle))) for f in faces) / interocular


def alignment(points: np.ndarray, config: FacesConfig) -> np.ndarray:
    """The 2x3 similarity that levels the eyes at a fixed distance and place."""
    left, right = eye_centres(points)
    delta = right - left
    scale = config.interocular * config.size / float(np.hypot(*delta))
    angle = np.arctan2(delta[1], delta[0])
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    middle = (left + right) / 2
    target = np.array([config.size / 2, config.eye_line * config.size])
    return np.hstack([linear, (target - linear @ middle)[:, None]])


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def equalise(crop: np.ndarray, config: FacesConfig, order: str = "RGB") -> np.ndarray:
    """Histogram equalisation of a crop on its luma, or CLAHE on it, or nothing; RGB out.

    ``order`` is the crop's channel order (RGB, or OpenCV's BGR: converted on the way, with
    the values an RGB crop gives). A grey crop (H, W) is its own luma: the same values as
    the RGB path gives each channel of that crop repeated three times (OpenCV's 8-bit
    YCrCb weights sum to one exactly).
    """
    if crop.ndim == 2:
        if config.equalise == "luma":
            return cv2.equalizeHist(crop)
        if config.equalise == "clahe":
            clahe = cv2.createCLAHE(config.clahe_clip, (config.clahe_tiles, config.clahe_tiles))
            return clahe.apply(crop)
        return crop
    bgr = order == "BGR"
    if config.equalise == "none":
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if bgr else crop
    ycrcb = cv2.cvtColor(crop, cv2.COLOR_BGR2YCrCb if bgr else cv2.COLOR_RGB2YCrCb)
    if config.equalise == "luma":
        ycrcb[..., 0] = cv2.equalizeHist(ycrcb[..., 0])
    else:
        clahe = cv2.createCLAHE(config.clahe_clip, (config.clahe_tiles, config.clahe_tiles))
        ycrcb[..., 0] = clahe.apply(ycrcb[..., 0])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def stabilised(matrix: np.ndarray, onset_points: np.ndarray, frame: np.ndarray,
               box: tuple[float, float, float, float], models: FaceModels,
               roll: float = 0.0) -> np.ndarray:
    """The clip transform corrected so this frame's rigid landmarks meet the onset's.

    Falls back to the clip transform when the mesh misses the frame.
    """
    points = landmarks(frame, box, models, roll)
    if points is None:
        return matrix
    rigid = list(RIGID)
    fit, _ = cv2.estimateAffinePartial2D(points[rigid].astype(np.float32),
                                         onset_points[rigid].astype(np.float32))
    if fit is None:
        return matrix
    return matrix @ np.vstack([fit, [0, 0, 1]])
