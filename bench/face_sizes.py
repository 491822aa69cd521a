"""What the face detector finds, by face size: the figures of README's "What the detector
finds" section.

    python -m bench.face_sizes [REAL_CLIPS_FOLDER]      (default ../shared/real_clips)

1. video_01.mp4 (a group outdoors): per attempt, the frames where it finds a face and the
   smallest face it finds, as inter-ocular distance (the detector's eye keypoints) in pixels.
2. single_face.mp4's first frame shrunk into a 640x480 grey frame: per attempt, the smallest
   face (inter-ocular pixels, the face mesh's at full size times the shrink) it still finds,
   and the smallest for which the whole stage still gets its landmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from mesti.pipeline.faces import align as faces

SHRINKS = (0.5, 0.4, 0.3, 0.25, 0.2, 0.17, 0.15, 0.13, 0.11, 0.1, 0.09, 0.08, 0.07)


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def group_video(path: Path, models: faces.FaceModels) -> dict[str, tuple[int, int, float]]:
    """attempt -> (frames with a face, frames, smallest inter-ocular pixels found)."""
    frames = _frames(path)
    result = {}
    for attempt in faces.ATTEMPTS:
        found = [faces.attempt_faces(f, models, attempt) for f in frames]
        sizes = [face.interocular for hits in found for face in hits]
        result[attempt] = (sum(bool(h) for h in found), len(frames),
                           min(sizes) if sizes else float("nan"))
    return result


def shrunk_face(path: Path, models: faces.FaceModels) -> dict[str, float]:
    """attempt (and ``landmarks``) -> smallest inter-ocular pixels still found."""
    image = _frames(path)[0]
    upright = faces.detect(image, models)
    full_size = faces.interocular_pixels(
        faces.landmarks(image, upright.box, models, upright.roll, turns=True))
    smallest: dict[str, float] = {}
    for shrink in SHRINKS:
        small = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[100:100 + small.shape[0], 200:200 + small.shape[1]] = small
        size = full_size * shrink
        for attempt in faces.ATTEMPTS:
            if faces.attempt_faces(canvas, models, attempt):
                smallest[attempt] = size
        found = faces.detect(canvas, models)
        if found and faces.landmarks(canvas, found.box, models, found.roll, turns=True) is not None:
            smallest["landmarks"] = size
    return smallest


def main(folder: Path) -> None:
    models = faces.FaceModels(faces.FacesConfig().min_confidence)
    print(f"video_01.mp4, threshold {models.min_confidence}:")
    for attempt, (hit, total, size) in group_video(folder / "video_01.mp4", models).items():
        print(f"  {attempt:9s} a face in {hit}/{total} frames; smallest found: {size:.1f} px "
              "between the eyes")
    print("single_face.mp4 frame 0 shrunk into 640x480 (smallest inter-ocular still found):")
    for what, size in shrunk_face(folder / "single_face.mp4", models).items():
        print(f"  {what:9s} {size:.1f} px")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "real_clips"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
