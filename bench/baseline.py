"""The usual MER preprocessing, written plainly: what the pipeline is compared against.

Per clip, as lab scripts do it: read every frame, detect the face on every frame, crop its
box and resize the crop to 224x224, write each crop to disk as a JPEG, read the crops back,
and compute a dynamic image in numpy float64 (``np.tensordot`` with Bilen's weights), saved
as one ``.npy`` per clip. Two detectors: MediaPipe's short-range face detection, and
OpenCV's Haar cascade (``haarcascade_frontalface_default.xml``, shipped with OpenCV), the
detector of FDP/MOL-era scripts when dlib (their first choice) is not installable; dlib has
no wheel for this Python and needs a compiler, so it is not used.

The recipe runs on as many processes as the pipeline has workers (one clip per task, a
process pool started inside the time, each process making its detector once): the
comparison is at equal cores. It computes less than the pipeline (one pooled image, no
alignment, no equalisation, no landmarks, no other images), so its speed is a generous one.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from mesti.datasets_manifest.manifest import read_manifest
from mesti.pipeline.pooling.weights import dynamic_raw

SIZE = 224
DETECTORS = ("mediapipe", "haar")
Box = tuple[int, int, int, int]

_detector = None  # one per recipe process


def run_recipe(manifest: Path, out_dir: Path, detector: str, processes: int) -> tuple[float, float]:
    """Preprocess every manifest clip into ``out_dir`` with the usual recipe on ``processes``
    processes; return (seconds, share of frames with a face found)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}")
    records = read_manifest(manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(Path(r.root) / r.source), list(r.frames), str(out_dir / r.clip_id))
            for r in records]
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn"),
                             initializer=_make_detector, initargs=(detector,)) as pool:
        results = list(pool.map(_recipe_clip, jobs))
    elapsed = time.perf_counter() - started
    found = sum(hits for hits, _ in results)
    return elapsed, found / max(sum(total for _, total in results), 1)


def _make_detector(detector: str) -> None:
    global _detector
    cv2.setNumThreads(1)  # one core per process, as the pipeline's workers
    if detector == "haar":
        _detector = cv2.CascadeClassifier(cv2.data.haarcascades +
                                          "haarcascade_frontalface_default.xml")
    else:
        import mediapipe as mp

        _detector = mp.solutions.face_detection.FaceDetection(model_selection=0,
                                                              min_detection_confidence=0.5)


def _recipe_clip(job: tuple[str, list[str], str]) -> tuple[int, int]:
    """One clip: per-frame crops written as JPEG files, read back, dynamic image saved."""
    folder, names, out = job
    crops_dir = Path(out)
    crops_dir.mkdir(parents=True, exist_ok=True)
    box: Box | None = None
    hits = 0
    for name in names:
        frame = cv2.imread(str(Path(folder) / name))
        detected = _largest_face(frame)
        hits += detected is not None
        box = detected or box or (0, 0, frame.shape[1], frame.shape[0])
        x, y, w, h = box
        cv2.imwrite(str(crops_dir / name), cv2.resize(frame[y:y + h, x:x + w], (SIZE, SIZE)))
    crops = np.stack([cv2.cvtColor(cv2.imread(str(crops_dir / name)), cv2.COLOR_BGR2RGB)
                      for name in names])
    image = np.tensordot(dynamic_raw(len(crops)), crops.astype(np.float64), axes=1)
    np.save(crops_dir / "dynamic_image.npy", image)
    return hits, len(names)


def _largest_face(frame: np.ndarray) -> Box | None:
    """The largest detected face as a pixel box clipped to the frame, or None."""
    height, width = frame.shape[:2]
    if isinstance(_detector, cv2.CascadeClassifier):
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = [tuple(int(v) for v in b) for b in
                 _detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                            minSize=(30, 30))]
    else:
        result = _detector.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        boxes = []
        for detection in result.detections or ():
            b = detection.location_data.relative_bounding_box
            x0, y0 = max(int(b.xmin * width), 0), max(int(b.ymin * height), 0)
            x1 = min(int((b.xmin + b.width) * width), width)
            y1 = min(int((b.ymin + b.height) * height), height)
            if x1 > x0 and y1 > y0:
                boxes.append((x0, y0, x1 - x0, y1 - y0))
    return max(boxes, key=lambda box: box[2] * box[3], default=None)
