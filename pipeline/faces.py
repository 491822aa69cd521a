"""Face detection and alignment: one similarity transform per clip, from its onset frame.

Micro-motions are one to three pixels, and cropping every frame on its own adds jitter
larger than that. So the face is found once, on the onset frame (MediaPipe's detector,
largest face, with fallbacks to the full-range model and an upscaled frame), face-mesh
landmarks are taken there, and one transform (eyes level, fixed inter-ocular distance,
fixed output size) is applied to every frame of the clip, as MEB does with RetinaFace.
Optional stabilisation re-fits each frame's rigid landmarks (eye corners, nose bridge) to
the onset's for clips with head motion.

MediaPipe 0.10.21's wheel carries the models, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

EQUALISE = ("none", "luma", "clahe")
LEFT_EYE = (33, 133)     # outer and inner corner in face-mesh numbering (image left)
RIGHT_EYE = (362, 263)
RIGID = (33, 133, 362, 263, 168, 6, 197, 195)  # eye corners and nose bridge


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
    upscale: float = 2.0          # factor of the last-resort retry when no face is found
    dominant_face: float = 2.0    # the largest face must be this many times the next in area
    stabilise: bool = False
    max_frame_pixels: int = 40_000_000  # larger frames fail by name before being decoded

    def __post_init__(self) -> None:
        if self.equalise not in EQUALISE:
            raise ValueError(f"equalise must be one of {EQUALISE}, got {self.equalise!r}")
        checks = {"size >= 32": self.size >= 32, "interocular > 0": self.interocular > 0,
                  "0 < eye_line < 1": 0 < self.eye_line < 1, "clahe_clip > 0": self.clahe_clip > 0,
                  "clahe_tiles >= 1": self.clahe_tiles >= 1,
                  "0 <= min_confidence <= 1": 0 <= self.min_confidence <= 1,
                  "upscale >= 1": self.upscale >= 1, "dominant_face >= 0": self.dominant_face >= 0,
                  "max_frame_pixels >= 1024": self.max_frame_pixels >= 1024}
        bad = [rule for rule, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid faces settings: {', '.join(bad)} must hold")


class DetectorError(RuntimeError):
    """MediaPipe raised on an input (kept apart from the project's own bugs)."""


MIN_SIDE = 32  # pixels: MediaPipe's short-range model sees 128x128; smaller frames hold no face


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]   # x, y, width, height in frame pixels
    score: float
    attempt: str                             # which model / scale found it
    n_faces: int
    runner_up: float                         # area of the second largest face over the largest


class FaceModels:
    """MediaPipe detectors and face mesh, made once per worker process (not thread-safe)."""

    def __init__(self, min_confidence: float = 0.5):
        import mediapipe as mp

        solutions = mp.solutions
        self.short = solutions.face_detection.FaceDetection(0, min_confidence)
        self.full = solutions.face_detection.FaceDetection(1, min_confidence)
        self.mesh = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)


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


def detect(image: np.ndarray, models: FaceModels, upscale: float = 2.0) -> Detection | None:
    """The largest face of an RGB frame, trying short-range, full-range, then upscaled."""
    attempts = [("short", models.short, 1.0), ("full", models.full, 1.0),
                ("short-upscaled", models.short, upscale), ("full-upscaled", models.full, upscale)]
    for name, model, scale in attempts:
        frame = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                      interpolation=cv2.INTER_CUBIC)
        result = _process(model, frame)
        if not result.detections:
            continue
        h, w = image.shape[:2]
        boxes = []
        for found in result.detections:
            b = found.location_data.relative_bounding_box
            boxes.append(((b.xmin * w, b.ymin * h, b.width * w, b.height * h), found.score[0]))
        boxes.sort(key=lambda item: item[0][2] * item[0][3], reverse=True)
        (box, score), area = boxes[0], boxes[0][0][2] * boxes[0][0][3]
        runner_up = boxes[1][0][2] * boxes[1][0][3] / area if len(boxes) > 1 and area else 0.0
        return Detection(tuple(float(v) for v in box), float(score), name, len(boxes),
                         float(runner_up))
    return None


def _process(model, frame: np.ndarray):
    try:
        return model.process(frame)
    except Exception as error:  # MediaPipe raises RuntimeError, ValueError, ...
        raise DetectorError(f"{type(error).__name__}: {error}") from error


def landmarks(image: np.ndarray, box: tuple[float, float, float, float],
              models: FaceModels) -> np.ndarray | None:
    """Face-mesh landmarks (468, 2) in frame pixels, of the face inside ``box``.

    The mesh runs on a square crop around the box (so it describes the chosen face, not
    another one) resized to 256 pixels.
    """
    x, y, w, h = box
    side = 1.8 * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    scale = 256.0 / side
    matrix = np.array([[scale, 0, 128 - scale * cx], [0, scale, 128 - scale * cy]])
    crop = cv2.warpAffine(image, matrix, (256, 256), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    result = _process(models.mesh, crop)
    if not result.multi_face_landmarks:
        return None
    points = np.array([(p.x * 256, p.y * 256) for p in result.multi_face_landmarks[0].landmark])
    return (points - matrix[:, 2]) / scale


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eye from their corners."""
    return points[list(LEFT_EYE)].mean(axis=0), points[list(RIGHT_EYE)].mean(axis=0)


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


def equalise(crop: np.ndarray, config: FacesConfig) -> np.ndarray:
    """Histogram equalisation of an RGB crop on its luma, or CLAHE on it, or nothing."""
    if config.equalise == "none":
        return crop
    ycrcb = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)
    if config.equalise == "luma":
        ycrcb[..., 0] = cv2.equalizeHist(ycrcb[..., 0])
    else:
        clahe = cv2.createCLAHE(config.clahe_clip, (config.clahe_tiles, config.clahe_tiles))
        ycrcb[..., 0] = clahe.apply(ycrcb[..., 0])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def stabilised(matrix: np.ndarray, onset_points: np.ndarray, frame: np.ndarray,
               box: tuple[float, float, float, float], models: FaceModels) -> np.ndarray:
    """The clip transform corrected so this frame's rigid landmarks meet the onset's.

    Falls back to the clip transform when the mesh misses the frame.
    """
    points = landmarks(frame, box, models)
    if points is None:
        return matrix
    rigid = list(RIGID)
    fit, _ = cv2.estimateAffinePartial2D(points[rigid].astype(np.float32),
                                         onset_points[rigid].astype(np.float32))
    if fit is None:
        return matrix
    return matrix @ np.vstack([fit, [0, 0, 1]])
