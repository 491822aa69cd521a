"""Motion images in the modality store, the sequences store, and named dimensions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
import zarr
from mesti.pipeline.faces import align as faces
from mesti.pipeline.faces import landmarks68
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.motion import active, flow
from mesti.pipeline.motion.images import MOTION_IMAGES, grey
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces, run_modalities, run_sequences
from mesti.pipeline.runner.sequences import SequencesConfig, sequence_arrays, to_size
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.stores.read import StoreError, open_store

SERIAL = ClusterOptions(workers=0, progress=False)


@pytest.fixture(scope="module")
def faces_store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("motion")
    fakes.sample_dataset(tmp, seed=3, subjects=1, min_clips=2, max_clips=2, min_frames=9,
                         max_frames=12)
    out = tmp / "faces.zarr"
    assert run_faces(tmp / "manifest" / "manifest.csv", out, FacesConfig(), SERIAL)[
        "clips_ok"] == 2
    return out


@pytest.fixture(scope="module")
def motion_store(faces_store: Path) -> Path:
    out = faces_store.parent / "modalities.zarr"
    config = ModalitiesConfig(variants=("mesti",), motion=MOTION_IMAGES, flow_size=48)
    run_modalities(faces_store, out, config, SERIAL)
    return out


def test_motion_images_equal_a_recomputation(faces_store: Path, motion_store: Path):
    source, pooled = open_store(faces_store), open_store(motion_store)
    assert pooled.names == ["mesti", "apex_frame", *MOTION_IMAGES]
    clip = pooled.clip_ids[0]
    frames = source.frames(clip)
    apex = pooled.clip_attrs(clip)["apex_index"]
    small = grey(frames, 48)
    for suffix, (a, b) in (("", (0, apex)), ("_offset", (apex, len(frames) - 1))):
        field = flow.tvl1_flow(small[a], small[b])
        u = cv2.resize(field[..., 0], (224, 224), interpolation=cv2.INTER_LINEAR)
        e = cv2.resize(flow.strain(field), (224, 224), interpolation=cv2.INTER_LINEAR)
        for name, truth in ((f"flow_u{suffix}", u), (f"strain{suffix}", e)):
            stored = pooled.float_image(clip, name)
            step = (truth.max() - truth.min()) / 255
            assert np.abs(stored[..., 0] - truth).max() <= step / 2 + 1e-5
            assert (stored[..., 0] == stored[..., 2]).all()
        uvs = pooled.float_image(clip, f"flow_uvs{suffix}")             # lo, hi per channel
        assert np.abs(uvs[..., 0] - u).max() <= (u.max() - u.min()) / 510 + 1e-5
        assert np.abs(uvs[..., 2] - e).max() <= (e.max() - e.min()) / 510 + 1e-5
    closed_form = active.active_image(grey(frames))
    stored = pooled.float_image(clip, "active_image")[..., 0]
    assert np.abs(stored - closed_form).max() <= np.ptp(closed_form) / 510 + 1e-3


def test_fixed_scaling_and_magnify_are_keyed(faces_store: Path, motion_store: Path, tmp_path):
    base = ModalitiesConfig(variants=("mesti",), motion=("flow_u",), flow_size=32)
    out = tmp_path / "m.zarr"
    run_modalities(faces_store, out, replace(base, flow_scaling="fixed", flow_bound=1.0), SERIAL)
    clip = open_store(out).clip_ids[0]
    attrs = open_store(out).clip_attrs(clip)
    assert attrs["lo"][-1] == -1.0 and attrs["hi"][-1] == 1.0    # zero flow at grey 128
    metrics = run_modalities(faces_store, out, replace(base, magnify=True), SERIAL)
    assert metrics["clips_ok"] == 2                               # a knob: recomputed
    with pytest.raises(ValueError, match="tvl1"):
        ModalitiesConfig(tvl1={"tau": 0.25, "taus": 1})
    with pytest.raises(ValueError, match="motion"):
        ModalitiesConfig(motion=("flow_w",))


@pytest.fixture(scope="module")
def sequences_store(faces_store: Path) -> tuple[Path, dict]:
    out = faces_store.parent / "sequences.zarr"
    config = SequencesConfig(size=64, length=4, flow=True)
    metrics = run_sequences(faces_store, out, config, SERIAL)
    return out, metrics


def test_sequences_store_holds_the_spec(faces_store: Path, sequences_store):
    path, metrics = sequences_store
    assert metrics["clips_ok"] == 2 and metrics["mesh_ms_per_frame"] > 0
    source, sequences = open_store(faces_store), open_store(path)
    assert sequences.kind == "sequences"
    with pytest.raises(StoreError, match="not a sequences store"):
        source.sequence(source.clip_ids[0])
    for clip in sequences.clip_ids:
        frames = source.frames(clip)
        arrays = sequences.sequence(clip)
        attrs = sequences.clip_attrs(clip)
        n = len(frames)
        stride = n // 4
        assert attrs["n_frames"] == n and attrs["phases"] == stride and attrs["size"] == 64
        assert arrays["positions"].tolist() == [[p + i * stride for i in range(4)]
                                                for p in range(stride)]
        assert arrays["frames"].shape == (stride, 4, 64, 64)
        assert arrays["landmarks"].shape == (stride, 4, 68, 2)
        assert arrays["flow"].shape == (stride, 3, 64, 64, 2)
        assert arrays["flow"].dtype == np.float16
        p, t = stride - 1, 2
        position = int(arrays["positions"][p, t])
        luma = cv2.cvtColor(frames[position], cv2.COLOR_RGB2GRAY)
        assert (arrays["frames"][p, t] == cv2.resize(luma, (64, 64),
                                                      interpolation=cv2.INTER_AREA)).all()
        onset68 = to_size(landmarks68.to_68(source.landmarks(clip)), 224, 64)
        np.testing.assert_allclose(arrays["landmarks"][0, 0], onset68, atol=1e-4)
        np.testing.assert_allclose(arrays["pupil_distance"],
                                   landmarks68.pupil_distance(arrays["landmarks"]), rtol=1e-5)
        # the alignment puts the eyes 0.30 * size apart; the mesh finds them there
        assert np.abs(arrays["pupil_distance"] / 64 - 0.30).max() < 0.03
        pair = flow.tvl1_flow(arrays["frames"][p, 0], arrays["frames"][p, 1])
        assert (np.abs(arrays["flow"][p, 0] - pair) <= 2e-3 + 1e-3 * np.abs(pair)).all()
        assert attrs["faces_key"] == source.clip_attrs(clip)["content_key"]
    again = run_sequences(faces_store, path, SequencesConfig(size=64, length=4, flow=True),
                          SERIAL)
    assert again["clips_reused"] == 2


def test_landmarks_follow_a_similarity_transform(faces_store: Path):
    source = open_store(faces_store)
    clip = source.clip_ids[0]
    onset = source.frames(clip)[0]
    matrix = cv2.getRotationMatrix2D((112, 100), 4.0, 1.05)
    matrix[:, 2] += (3.0, -2.0)
    moved = cv2.warpAffine(onset, matrix, (224, 224), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    models = faces.FaceModels()
    mesh = source.landmarks(clip)
    arrays, _ = sequence_arrays(np.stack([onset, moved]), mesh,
                                SequencesConfig(size=224, sampling="all"), models)
    first = faces.landmarks(onset, (60, 40, 104, 150), models)   # the mesh on the onset crop
    expected = faces.transform_points(landmarks68.to_68(first), matrix)
    error = np.linalg.norm(arrays["landmarks"][0, 1] - expected, axis=1)
    assert np.median(error) < 1.5 and error.max() < 5                # pixels of a 224 crop


def test_every_array_has_dimension_names_and_xarray_reads_them(faces_store, motion_store,
                                                               sequences_store):
    xr = pytest.importorskip("xarray", reason="xarray is in the test extra")
    expected = {faces_store: {"frames": ("frame", "y", "x", "channel"),
                              "landmarks": ("point", "xy")},
                motion_store: {"images": ("image", "y", "x", "channel")},
                sequences_store[0]: {"frames": ("phase", "frame", "y", "x"),
                                     "landmarks": ("phase", "frame", "point", "xy"),
                                     "flow": ("phase", "step", "y", "x", "uv")}}
    for path, arrays in expected.items():
        clip = open_store(path).clip_ids[0]
        group = zarr.open_group(str(path), path=f"clips/{clip}", mode="r")
        for name in group.array_keys():
            assert group[name].metadata.dimension_names is not None, (path, name)
        data = xr.open_zarr(str(path), group=f"clips/{clip}", consolidated=False,
                            zarr_format=3)
        for name, dims in arrays.items():
            assert data[name].dims == dims
        assert data.attrs["clip_id"] == clip


def test_region_apex_estimators_look_only_at_brows_and_mouth(faces_store: Path):
    from mesti.pipeline.pooling import apex
    source = open_store(faces_store)
    clip = source.clip_ids[0]
    base, mesh = source.frames(clip)[0].astype(np.float64), source.landmarks(clip)
    boxes = apex.region_boxes(mesh, 224)
    y0, y1, x0, x1 = boxes[-1]                                    # the mouth
    forehead = min(b[0] for b in boxes[:2]) - 2
    assert forehead > 10
    shifted = base.copy()                                        # a new texture: wrinkles
    shifted[y0:y1, x0:x1] = (128 + 60 * np.sin(np.arange(y0, y1) * np.pi / 2))[:, None, None]
    t = np.arange(15)
    mouth = np.clip(1 - np.abs(t - 9) / 4, 0, 1)                 # a mouth change, apex 9
    glare = np.clip(1 - np.abs(t - 4) / 2, 0, 1)                 # a brightness change above
    frames = np.repeat(base[None], 15, 0)
    for i in t:
        frames[i, y0:y1, x0:x1] = (1 - mouth[i]) * base[y0:y1, x0:x1] + mouth[i] * shifted[
            y0:y1, x0:x1]
        frames[i, :forehead] += 60 * glare[i]
    frames[-1, y0:y1, x0:x1] = base[y0:y1, x0:x1][:, ::-1]       # as large, but the last
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    found = apex.estimates(frames, mesh, smoothing=1)
    assert found["face_difference"] != 9                         # the whole face is fooled
    assert found["region_difference"] == 9 and found["region_lbp"] == 9
