"""The embedded sample: CASME II layout read by the real recipe, motion where the truth says."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from mesti.datasets_manifest.manifest import build_manifest, read_manifest
from mesti.pipeline.sample.generator import (
    IMAGE_DIR,
    SampleConfig,
    generate_sample,
    intensity_profile,
)

SMALL = SampleConfig(seed=3, subjects=3, min_frames=24, max_frames=30)
EXPECTED3 = {"happiness": "positive", "disgust": "negative", "repression": "negative",
             "surprise": "surprise"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate_sample(out, SMALL)


def test_manifest_has_every_clip_with_truth(sample, tmp_path: Path) -> None:
    root, truth = sample
    counts = build_manifest("casme2", root, tmp_path)
    records = {r.clip_id: r for r in read_manifest(tmp_path / "manifest.csv")}
    assert counts["clips_ok"] == len(truth) and counts["clips_excluded"] == 0
    assert (tmp_path / "problems.csv").read_text().count("\n") == 1  # header only
    for clip in truth:
        record = records[f"{clip.subject}_{clip.filename}"]
        assert (record.onset, record.apex, record.offset) == (clip.onset, clip.apex, clip.offset)
        assert record.frame_numbers == list(range(clip.onset, clip.offset + 1))
        assert record.frames[0] == f"img{clip.onset}.jpg"
        assert record.emotion == clip.emotion and record.label3 == EXPECTED3[clip.emotion]
    assert {r.subject for r in records.values()} == {"sub01", "sub02", "sub03"}


def test_motion_is_local_and_peaks_at_apex(sample) -> None:
    root, truth = sample
    for clip in truth:
        folder = root / IMAGE_DIR / clip.subject / clip.filename
        stack = np.stack([cv2.imread(str(folder / f"img{n}.jpg"), cv2.IMREAD_GRAYSCALE)
                          for n in range(clip.onset, clip.offset + 1)]).astype(np.float32)
        diff = cv2.GaussianBlur(np.abs(stack[clip.apex - clip.onset] - stack[0]), (0, 0), 6)
        peak_y, peak_x = np.unravel_index(np.argmax(diff), diff.shape)
        nearest = min(np.hypot(peak_x - x, peak_y - y) for x, y in clip.moving_xy)
        assert nearest < 25, (clip, peak_x, peak_y)

        mask = np.zeros(diff.shape, bool)
        for x, y in clip.moving_xy:
            cv2.circle(mask.view(np.uint8), (int(x), int(y)), 12, 1, -1)
        energy = np.abs(stack - stack[0])[:, mask].mean(axis=1)
        assert abs(int(np.argmax(energy)) - (clip.apex - clip.onset)) <= 3, (clip, energy)


def test_profile_rises_to_apex_and_falls() -> None:
    for n, apex in [(30, 7), (41, 20), (60, 44)]:
        p = intensity_profile(n, apex)
        assert p[0] == 0 and p[-1] == 0 and p[apex] == 1
        assert np.all(np.diff(p[: apex + 1]) > 0) and np.all(np.diff(p[apex:]) < 0)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    config = SampleConfig(seed=11, subjects=1, min_clips=1, max_clips=1, min_frames=5,
                          max_frames=6)

    def digest(folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    generate_sample(tmp_path / "a", config)
    generate_sample(tmp_path / "b", config)
    generate_sample(tmp_path / "c", SampleConfig(**{**config.__dict__, "seed": 12}))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
