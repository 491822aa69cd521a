"""Faces of a real video (../shared/real_clips/single_face.mp4): found, level, one transform."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from mesti.datasets_manifest.manifest import build_manifest
from mesti.pipeline import apex, faces
from mesti.pipeline.frames import iter_frames
from mesti.pipeline.reader import open_store
from mesti.pipeline.run import ClusterOptions, run_faces

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "real_clips"
SINGLE = CLIPS / "single_face.mp4"
pytestmark = pytest.mark.skipif(
    not SINGLE.is_file(), reason=f"real face clips not found at {CLIPS} (kept outside the repo)")
SMILE = range(23, 69)  # frames where the smile is up (real_clips/README.md)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("real")
    (tmp / "videos").mkdir()
    (tmp / "videos" / "single_face.mp4").symlink_to(SINGLE)
    build_manifest("videos", tmp / "videos", tmp / "manifest")
    metrics = run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", faces.FacesConfig(),
                        ClusterOptions(workers=0, progress=False))
    return tmp / "faces.zarr", metrics


def test_face_found_aligned_and_level(store) -> None:
    path, metrics = store
    assert metrics["clips_ok"] == 1 and metrics["face_detection_rate"] == 1.0
    reader = open_store(path)
    attrs = reader.clip_attrs("single_face")
    assert attrs["faces_found"] == 1 and attrs["face_score"] > 0.8
    frames = reader.frames("single_face")
    assert frames.shape == (72, 224, 224, 3)
    left, right = faces.eye_centres(reader.landmarks("single_face"))
    config = faces.FacesConfig()
    assert abs(left[1] - right[1]) < 0.01                      # eyes level
    assert np.hypot(*(right - left)) == pytest.approx(config.interocular * 224, abs=0.01)
    assert (left[1] + right[1]) / 2 == pytest.approx(config.eye_line * 224, abs=0.01)


def test_one_crop_transform_for_every_frame(store) -> None:
    path, _ = store
    reader = open_store(path)
    attrs = reader.clip_attrs("single_face")
    matrix = np.array(attrs["transform"])
    stored = reader.frames("single_face")
    config = faces.FacesConfig()
    source = iter_frames("single_face", "video", SINGLE, [str(i) for i in range(72)])
    for t, frame in enumerate(source):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        recomputed = faces.equalise(faces.warp(rgb, matrix, 224), config)
        assert np.array_equal(recomputed, stored[t]), t


def test_estimated_apex_lies_in_the_smile(store) -> None:
    path, _ = store
    frames = open_store(path).frames("single_face")
    assert apex.estimate(frames) in SMILE
