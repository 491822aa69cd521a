"""The usual MER preprocessing, written plainly: what the pipeline is compared against.

Per clip, in one process: read every frame, detect the face on every frame (MediaPipe
FaceDetection), crop its box and resize the crop to 224x224, then rank-pool the clip in
numpy float64 (``np.tensordot`` with the MESTI weights) and save one ``.npy`` per clip.
This is deliberately the common recipe, not a tuned one: no alignment, no equalisation,
library defaults for threading. It computes less than the pipeline (one pooled image, no
face mesh, no other modalities), so the speedup it yields is a conservative one.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from mesti.datasets_manifest.manifest import read_manifest
from mesti.datasets_manifest.records import ClipRecord
from mesti.pipeline.weights import mesti

SIZE = 224
Box = tuple[int, int, int, int]


def run_baseline(manifest: Path, out_dir: Path) -> tuple[float, float]:
    """Preprocess every manifest clip into ``out_dir``; return (seconds, face-detection rate).

    The seconds include making the detector, as the pipeline's include making its models.
    """
    import mediapipe as mp

    records = read_manifest(manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = total = 0
    started = time.perf_counter()
    with mp.solutions.face_detection.FaceDetection(model_selection=0,
                                                   min_detection_confidence=0.5) as detector:
        for record in records:
            crops, hits = _clip_crops(record, detector)
            pooled = np.tensordot(mesti(len(crops), _apex(record)), crops.astype(np.float64),
                                  axes=1)
            np.save(out_dir / f"{record.clip_id}.npy", pooled)
            found += hits
            total += len(crops)
    return time.perf_counter() - started, found / max(total, 1)


def _clip_crops(record: ClipRecord, detector) -> tuple[np.ndarray, int]:
    """Every frame's face crop (T, 224, 224, 3) uint8 RGB, and on how many a face was found.

    A frame without a detection reuses the previous box (the whole frame at the start).
    """
    folder = Path(record.root) / record.source
    crops = np.empty((len(record.frames), SIZE, SIZE, 3), np.uint8)
    box: Box | None = None
    hits = 0
    for t, name in enumerate(record.frames):
        frame = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
        detected = _largest_face(frame, detector)
        hits += detected is not None
        box = detected or box or (0, 0, frame.shape[1], frame.shape[0])
        x, y, w, h = box
        crops[t] = cv2.resize(frame[y:y + h, x:x + w], (SIZE, SIZE))
    return crops, hits


def _largest_face(frame: np.ndarray, detector) -> Box | None:
    """The largest detected face as a pixel box clipped to the frame, or None."""
    result = detector.process(frame)
    if not result.detections:
        return None
    height, width = frame.shape[:2]
    boxes = []
    for detection in result.detections:
        b = detection.location_data.relative_bounding_box
        x0, y0 = max(int(b.xmin * width), 0), max(int(b.ymin * height), 0)
        x1 = min(int((b.xmin + b.width) * width), width)
        y1 = min(int((b.ymin + b.height) * height), height)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    return max(boxes, key=lambda box: box[2] * box[3], default=None)


def _apex(record: ClipRecord) -> int:
    """The 1-based apex position in the window: the annotation, else the middle frame."""
    if record.apex in record.frame_numbers:
        return record.frame_numbers.index(record.apex) + 1
    return (len(record.frames) + 1) // 2
