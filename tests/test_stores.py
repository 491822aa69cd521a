"""Faces and modality stores on a small synthetic sample: parallel = serial, incremental
reuse, knob isolation, and every stored image against an independent recomputation."""

import hashlib
from dataclasses import replace
from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
import zarr
from mesti.datasets_manifest.manifest import read_manifest, write_manifest
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.pooling import weights
from mesti.pipeline.pooling.kernels import flat_tolerance, to_uint8
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces, run_modalities
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.sample.generator import IMAGE_DIR
from mesti.pipeline.stores.read import StoreError, open_store

SERIAL = ClusterOptions(workers=0, progress=False)
TWO = ClusterOptions(workers=2, progress=False)


def tree_digest(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("stores")
    return fakes.sample_dataset(tmp, seed=5, subjects=2, min_clips=2, max_clips=2,
                                min_frames=16, max_frames=20)


@pytest.fixture(scope="module")
def serial_faces(sample: Path) -> Path:
    out = sample / "faces-serial.zarr"
    metrics = run_faces(sample / "manifest" / "manifest.csv", out, FacesConfig(), SERIAL)
    assert metrics["clips_ok"] == metrics["clips"] == 4
    return out


def _clip_arrays(path: Path) -> dict:
    store = open_store(path)
    return {c: (store.frames(c), store.landmarks(c),
                {k: v for k, v in store.clip_attrs(c).items()}) for c in store.clip_ids}


def test_two_workers_write_what_one_writes(sample: Path, serial_faces: Path) -> None:
    parallel = sample / "faces-parallel.zarr"
    metrics = run_faces(sample / "manifest" / "manifest.csv", parallel, FacesConfig(), TWO)
    assert metrics["clips_ok"] == 4
    one, two = _clip_arrays(serial_faces), _clip_arrays(parallel)
    assert one.keys() == two.keys()
    for clip in one:
        assert np.array_equal(one[clip][0], two[clip][0])
        assert np.array_equal(one[clip][1], two[clip][1])
        assert one[clip][2] == two[clip][2]
    assert tree_digest(serial_faces).keys() == tree_digest(parallel).keys()


def test_rerun_reuses_and_new_clips_only_are_computed(sample: Path, serial_faces: Path) -> None:
    before = tree_digest(serial_faces / "clips")
    again = run_faces(sample / "manifest" / "manifest.csv", serial_faces, FacesConfig(), SERIAL)
    assert (again["clips_ok"], again["clips_reused"]) == (0, 4)
    assert tree_digest(serial_faces / "clips") == before

    records = read_manifest(sample / "manifest" / "manifest.csv")
    partial = sample / "partial"
    partial.mkdir(exist_ok=True)
    write_manifest(records[:2], partial / "manifest.csv")
    grown = sample / "faces-grown.zarr"
    first = run_faces(partial / "manifest.csv", grown, FacesConfig(), SERIAL)
    assert (first["clips_ok"], first["clips_reused"]) == (2, 0)
    second = run_faces(sample / "manifest" / "manifest.csv", grown, FacesConfig(), SERIAL)
    assert (second["clips_ok"], second["clips_reused"]) == (2, 2)
    assert open_store(grown).clip_ids == [r.clip_id for r in records]


def test_modality_knob_leaves_faces_untouched(sample: Path, serial_faces: Path) -> None:
    faces_before = tree_digest(serial_faces)
    out = sample / "modalities.zarr"
    first = run_modalities(serial_faces, out, ModalitiesConfig(), SERIAL)
    assert first["clips_ok"] == 4
    again = run_modalities(serial_faces, out, ModalitiesConfig(), SERIAL)
    assert (again["clips_ok"], again["clips_reused"]) == (0, 4)
    changed = run_modalities(serial_faces, out, ModalitiesConfig(apex_policy="middle"), SERIAL)
    assert (changed["clips_ok"], changed["clips_reused"]) == (4, 0)
    assert changed["apex_policy_used"] == {"middle": 4}
    assert tree_digest(serial_faces) == faces_before


def test_stored_images_equal_a_recomputation(sample: Path, serial_faces: Path) -> None:
    out = sample / "modalities-check.zarr"
    config = ModalitiesConfig(apex_policy="annotation")
    run_modalities(serial_faces, out, config, SERIAL)
    faces_store, pooled = open_store(serial_faces), open_store(out)
    assert pooled.names == [*weights.VARIANTS, "apex_frame"]
    assert list(pooled.index["label3"]) == list(faces_store.index["label3"])
    for clip in pooled.clip_ids:
        frames = faces_store.frames(clip).astype(np.float64)
        attrs = pooled.clip_attrs(clip)
        a = attrs["frame_numbers"].index(attrs["apex"])
        assert attrs["apex_index"] == a
        for variant in weights.VARIANTS:
            w = weights.weights(variant, len(frames), a + 1)
            reference = np.tensordot(w, frames, axes=1)
            expected, lo, hi = to_uint8(reference.astype(np.float32), flat_tolerance(w))
            stored = pooled.image(clip, variant)
            assert np.abs(stored.astype(int) - expected).max() <= 1, (clip, variant)
            recovered = pooled.float_image(clip, variant)
            assert np.abs(recovered - reference).max() <= (hi - lo) / 255 + 1e-3
        assert np.array_equal(pooled.image(clip, "apex_frame"), faces_store.frames(clip)[a])
    assert pooled.images("mesti").shape == (4, 224, 224, 3)


def test_mesti_motion_sits_at_the_generated_region(sample: Path, serial_faces: Path) -> None:
    """The MESTI image's strongest structure lies where the sample moved the face."""
    import json

    out = sample / "modalities-region.zarr"
    run_modalities(serial_faces, out, ModalitiesConfig(), SERIAL)
    pooled, faces_store = open_store(out), open_store(serial_faces)
    truth = {f"{c['subject']}_{c['filename']}": c
             for c in json.loads((sample / "raw" / "truth.json").read_text())}
    for clip in pooled.clip_ids:
        matrix = np.array(faces_store.clip_attrs(clip)["transform"])
        moving = np.array(truth[clip]["moving_xy"]) @ matrix[:, :2].T + matrix[:, 2]
        energy = cv2.GaussianBlur(np.abs(pooled.float_image(clip, "mesti")).mean(axis=2),
                                  (0, 0), 4)
        y, x = np.unravel_index(np.argmax(energy), energy.shape)
        assert np.hypot(moving[:, 0] - x, moving[:, 1] - y).min() < 15, clip


def test_failed_clip_is_reported_and_the_rest_complete(sample: Path) -> None:
    records = read_manifest(sample / "manifest" / "manifest.csv")
    blank = sample / "raw" / IMAGE_DIR / "sub09" / "EP01_01f"
    blank.mkdir(parents=True, exist_ok=True)
    for n in range(1, 6):
        cv2.imwrite(str(blank / f"img{n}.jpg"), np.full((480, 640, 3), 90, np.uint8))
    faceless = replace(records[0], subject="sub09", clip_id="sub09_EP01_01f",
                       source="sub09/EP01_01f", frames=[f"img{n}.jpg" for n in range(1, 6)],
                       frame_numbers=list(range(1, 6)), onset=1, apex=3, offset=5)
    broken = replace(records[1], clip_id="sub01_missing", frames=["img999999.jpg"] * 3,
                     frame_numbers=[999999] * 3)
    folder = sample / "with-failures"
    folder.mkdir(exist_ok=True)
    write_manifest([records[0], faceless, broken], folder / "manifest.csv")
    out = sample / "faces-failures.zarr"
    metrics = run_faces(folder / "manifest.csv", out, FacesConfig(), SERIAL)
    assert (metrics["clips_ok"], metrics["clips_failed"]) == (1, 2)
    assert metrics["failures"] == {"no_face": 1, "input_missing": 1}
    assert metrics["face_detection_rate"] == 0.5
    store = open_store(out)
    assert store.clip_ids == [records[0].clip_id]
    failures = {f["clip_id"]: f for f in store.attrs["failures"]}
    assert "img999999.jpg" in failures["sub01_missing"]["message"]


def test_reader_refuses_incomplete_and_foreign_stores(sample: Path, serial_faces: Path) -> None:
    group = zarr.open_group(str(sample / "half.zarr"), mode="w")
    group.attrs.update({"mesti_store": 1, "kind": "faces", "complete": False})
    with pytest.raises(StoreError, match="incomplete"):
        open_store(sample / "half.zarr")
    zarr.open_group(str(sample / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a mesti store"):
        open_store(sample / "plain.zarr")
    with pytest.raises(StoreError, match="no zarr store"):
        open_store(sample / "absent.zarr")
    with pytest.raises(KeyError, match="no clip"):
        open_store(serial_faces).frames("nope")


def test_code_change_invalidates_clips(monkeypatch) -> None:
    """A clip's key covers the code that computed it, not only knobs and versions."""
    import importlib.util

    from mesti.pipeline.stores import keys
    from mesti.pipeline.stores import write as store
    before = store.versions(code=("mesti.pipeline.pooling.weights",))
    real = importlib.util.find_spec

    class Spec:
        origin = __file__  # another file stands in for an edited module

    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name: Spec() if name == "mesti.pipeline.pooling.weights" else real(name))
    after = store.versions(code=("mesti.pipeline.pooling.weights",))
    assert before["code_sha256"] != after["code_sha256"]
    assert keys.modalities_key("f", {}, {}, before) != keys.modalities_key("f", {}, {}, after)
