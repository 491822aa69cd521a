"""Faces of the real videos in ../shared/real_clips/: each clip gives what its README states.

single_face.mp4 and the GRID .mpg clips hold one frontal face in every frame; video_01.mp4 a
group whose faces only the full-range model finds; face_noface.mov the man then a cartoon,
so its onset frame decides; no_face.mp4 no person. A face that leaves its crop by the
apex or last frame fails the clip as ``face_drift``. One faces run covers them all.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
from mesti.datasets_manifest.manifest import build_manifest
from mesti.pipeline.faces import align as faces
from mesti.pipeline.faces.decode import iter_frames
from mesti.pipeline.pooling import apex
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces
from mesti.pipeline.stores.read import open_store
from real_clips import CLIPS, needs

SINGLE = CLIPS / "single_face.mp4"
VIDEOS = ("single_face.mp4", "bbaf2n.mpg", "lbax4n.mpg", "swiz3n.mpg", "video_01.mp4",
          "face_noface.mov", "no_face.mp4")
pytestmark = needs(*VIDEOS)
SMILE = range(23, 69)  # frames where the smile is up (real_clips/README.md)
# clip id -> (video, onset, offset); face_noface.mov shows the man in frames 0-~70 only
WINDOWS = {
    "single_face": ("single_face.mp4", 0, 71),
    "bbaf2n": ("bbaf2n.mpg", 0, 74),
    "lbax4n": ("lbax4n.mpg", 0, 74),
    "swiz3n": ("swiz3n.mpg", 0, 74),
    "video_01": ("video_01.mp4", 0, 8),               # a micro-expression's length
    "video_01_pan": ("video_01.mp4", 0, 89),          # the camera pans 1.7 eye distances
    "no_face": ("no_face.mp4", 0, 94),
    "face_noface_0": ("face_noface.mov", 0, 40),       # onset on the man: a face
    "face_noface_100": ("face_noface.mov", 100, 130),  # onset on the cartoon: no face
    "face_noface_20": ("face_noface.mov", 20, 168),    # the man, then gone by the last frame
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("real")
    videos = tmp / "videos"
    videos.mkdir()
    rows = ["video,subject,onset,offset"]
    for clip_id, (video, onset, offset) in WINDOWS.items():
        link = videos / f"{clip_id}{Path(video).suffix}"
        link.symlink_to(CLIPS / video)
        rows.append(f"{link.name},{clip_id},{onset},{offset}")
    (videos / "annotations.csv").write_text("\n".join(rows) + "\n")
    counts = build_manifest("videos", videos, tmp / "manifest")
    assert counts["clips_ok"] == len(WINDOWS), counts
    metrics = run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", faces.FacesConfig(),
                        ClusterOptions(workers=0, progress=False))
    return tmp / "faces.zarr", metrics


@pytest.fixture(scope="module")
def outcome(store) -> dict[str, str]:
    """clip id -> detector attempt for stored clips, failure code for failed ones."""
    path, _ = store
    reader = open_store(path)
    result = {c: reader.clip_attrs(c)["detector"] for c in reader.clip_ids}
    result.update({f["clip_id"]: f["code"] for f in reader.attrs["failures"]})
    return result


def test_every_clip_gives_what_its_readme_states(store, outcome) -> None:
    _, metrics = store
    assert outcome == {
        "single_face": "short", "bbaf2n": "short", "lbax4n": "short", "swiz3n": "short",
        "video_01": "full",                 # three small faces: only the full-range model
        "face_noface_0": "short",           # the onset frame holds the man
        "face_noface_100": "no_face",       # the onset frame is the cartoon
        "face_noface_20": "face_drift",     # the man leaves before the last frame
        "video_01_pan": "face_drift",       # the face moves out of its crop
        "no_face": "no_face",
    }
    assert metrics["failures"] == {"no_face": 2, "face_drift": 2}
    messages = {f["clip_id"]: f["message"] for f in open_store(store[0]).attrs["failures"]}
    assert "moved" in messages["video_01_pan"] and "no face found" in messages["no_face"]
    # 7 clips reached a verdict on the onset face: 5 short, 1 full, 2 none (drift: not counted)
    assert metrics["face_detection_by_attempt"] == {"short": round(5 / 8, 4),
                                                    "full": round(1 / 8, 4), "upscaled": 0.0}


def test_clip_attributes_record_attempt_score_roll_and_resolution(store) -> None:
    path, _ = store
    reader = open_store(path)
    for clip_id in ("single_face", "bbaf2n", "video_01"):
        attrs = reader.clip_attrs(clip_id)
        assert attrs["face_score"] >= faces.FacesConfig().min_confidence
        assert abs(attrs["face_roll"]) < 15          # upright people
        assert 0 <= attrs["face_drift"] <= faces.FacesConfig().max_drift
        # effective resolution: the stored landmarks' eye distance over the transform's scale
        scale = float(np.hypot(*np.array(attrs["transform"])[:, 0]))
        assert attrs["interocular_px"] == pytest.approx(0.30 * 224 / scale, rel=1e-3)
    video = reader.clip_attrs("video_01")
    assert video["faces_found"] == 3 and video["interocular_px"] < 0.30 * 224  # upsampled
    assert reader.clip_attrs("single_face")["interocular_px"] > 60


def test_face_found_aligned_and_level(store) -> None:
    path, _ = store
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
