"""Each detection attempt is the model it names with the threshold it is given, rotated faces
are levelled, a face that moves is caught, and MediaPipe's log lines stay quiet: checked on
frames of the real videos in ../shared/real_clips/."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
from mesti.datasets_manifest.manifest import build_manifest
from mesti.pipeline.faces import align as faces
from mesti.pipeline.faces.decode import ClipError, read_input
from mesti.pipeline.runner import stages
from real_clips import CLIPS, frame, needs

pytestmark = needs("single_face.mp4", "video_01.mp4")
LEVEL = 2.0  # degrees: how level the eyes of an aligned crop are, upright face included


@pytest.fixture(scope="module")
def models() -> faces.FaceModels:
    return faces.FaceModels(0.5)


def _small_face(shrink: float) -> np.ndarray:
    """single_face.mp4's first frame shrunk and pasted into a 640x480 grey frame."""
    image = frame("single_face.mp4")
    small = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 200:200 + small.shape[1]] = small
    return canvas


def test_a_small_face_is_found_by_the_full_range_model_only(models) -> None:
    canvas = _small_face(0.3)      # about 21 pixels between the eyes
    assert faces.attempt_faces(canvas, models, "short") == []
    [face] = faces.attempt_faces(canvas, models, "full")
    assert face.score > 0.8
    found = faces.detect(canvas, models)
    assert found.attempt == "full" and found.box == face.box


def test_the_tiled_attempt_finds_what_the_full_range_model_misses(models) -> None:
    canvas = _small_face(0.1)      # about 7 pixels between the eyes
    assert faces.attempt_faces(canvas, models, "full") == []
    # enlarging the whole frame changes nothing: MediaPipe resizes it to its input anyway
    assert faces.attempt_faces(cv2.resize(canvas, None, fx=2, fy=2), models, "full") == []
    found = faces.detect(canvas, models, upscale=2.0)
    assert found is not None and found.attempt == "upscaled"
    x, y, w, h = found.box          # on the face: pasted at (200, 100), 64x36 pixels
    assert 200 <= x + w / 2 <= 264 and 100 <= y + h / 2 <= 136
    assert faces.detect(canvas, models, upscale=1.0) is None  # upscale 1: no tiled attempt


def test_a_raised_threshold_rejects_the_low_score_faces(models) -> None:
    image = frame("video_01.mp4")
    low = faces.attempt_faces(image, models, "full")
    scores = sorted(f.score for f in low)
    assert len(scores) == 3 and scores[0] < 0.7 < scores[1]       # 0.60, 0.88, 0.92
    strict = faces.FaceModels(0.7)
    high = faces.attempt_faces(image, strict, "full")
    assert sorted(f.score for f in high) == pytest.approx(scores[1:], abs=1e-6)
    upside_down = cv2.rotate(frame("single_face.mp4"), cv2.ROTATE_180)
    [face] = faces.attempt_faces(upside_down, models, "short")    # the short model: 0.70
    assert 0.5 < face.score < 0.8
    assert faces.attempt_faces(upside_down, faces.FaceModels(0.8), "short") == []


def _aligned(tmp_path, rotate: int | None, config: faces.FacesConfig,
             shifts: tuple[float, ...] = (0, 0, 0)) -> tuple[np.ndarray, dict]:
    """Frames 0, 30, 71 of single_face.mp4, turned by ``rotate`` and shifted right by
    ``shifts`` pixels, through the stage's alignment as an image clip."""
    folder = tmp_path / f"clip_{rotate}_{shifts[-1]}"
    folder.mkdir(exist_ok=True)
    names = []
    for t, (index, dx) in enumerate(zip((0, 30, 71), shifts, strict=True)):
        image = frame("single_face.mp4", index)
        image = image if rotate is None else cv2.rotate(image, rotate)
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, 0]]),
                               image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        names.append(f"{t}.png")
        cv2.imwrite(str(folder / names[-1]), cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    record = {"kind": "images", "frames": names, "frame_numbers": [0, 1, 2], "apex": None}
    source = read_input("single_face", "images", folder, names)
    return stages._align("single_face", record, source, config)


@pytest.mark.parametrize("rotate", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180,
                                    cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_a_turned_face_is_aligned_as_level_as_the_upright_one(tmp_path, models, rotate) -> None:
    config = faces.FacesConfig()
    upright, upright_found = _aligned(tmp_path, None, config)
    turned, found = _aligned(tmp_path, rotate, config)
    expected = {cv2.ROTATE_90_CLOCKWISE: 90, cv2.ROTATE_180: 180,
                cv2.ROTATE_90_COUNTERCLOCKWISE: -90}[rotate]
    assert (found["roll"] - upright_found["roll"] - expected + 180) % 360 - 180 == \
        pytest.approx(0, abs=LEVEL)
    # independent of the alignment's own landmarks: a fresh face mesh on the aligned crops
    for crops in (upright, turned):
        for crop in crops:
            points = faces.landmarks(crop, (0.0, 0.0, 224.0, 224.0), models)
            assert points is not None and abs(faces.eye_roll(points)) < LEVEL
    # the same face lands on the same crop pixels: nose tip, upper lip, chin within 2 pixels
    parts = [1, 13, 152]
    distance = np.hypot(*(found["landmarks"][parts] - upright_found["landmarks"][parts]).T)
    assert distance.max() < 2.0


def test_a_face_that_moves_fails_the_clip_by_its_drift(tmp_path, models) -> None:
    interocular = faces.detect(frame("single_face.mp4"), models).face.interocular
    shifts = (0.0, round(0.5 * interocular), round(1.0 * interocular))
    with pytest.raises(ClipError) as caught:
        _aligned(tmp_path, None, faces.FacesConfig(), shifts)
    assert caught.value.code == "face_drift" and "moved 1.0" in caught.value.message
    _, found = _aligned(tmp_path, None, faces.FacesConfig(max_drift=1.5), shifts)
    assert found["drift"] == pytest.approx(shifts[-1] / interocular, abs=0.05)
    # stabilise re-fits every frame, so it follows the face: recorded, not failed
    _, found = _aligned(tmp_path, None, faces.FacesConfig(stabilise=True), shifts)
    assert found["drift"] == pytest.approx(shifts[-1] / interocular, abs=0.05)


NATIVE_LOG_LINES = ("inference_feedback_manager", "XNNPACK", "absl::InitializeLog")


def test_mediapipe_log_lines_only_with_verbose(tmp_path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "single_face.mp4").symlink_to(CLIPS / "single_face.mp4")
    build_manifest("videos", videos, tmp_path / "manifest")
    manifest = str(tmp_path / "manifest" / "manifest.csv")

    def mesti(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", "from mesti.cli import main; main()",
                               *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    quiet = mesti("faces", manifest, str(tmp_path / "a.zarr"), "--workers", "1",
                  "--no-progress")   # on a Dask worker process
    assert '"clips_ok": 1' in quiet
    assert not [line for line in quiet.splitlines() if any(s in line for s in NATIVE_LOG_LINES)]
    loud = mesti("-v", "faces", manifest, str(tmp_path / "b.zarr"), "--workers", "0",
                 "--no-progress")
    assert "inference_feedback_manager" in loud
