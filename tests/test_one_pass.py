"""One pass per clip (``run_preprocess``): the same stores as the two stages, each input read
once, a modalities-only change that decodes nothing, grey clips decoded as grey with the
same pixels, and faces chunks written outside zarr byte-identical to zarr's."""

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from mesti.datasets_manifest.manifest import read_manifest, write_manifest
from mesti.pipeline.faces import decode as frames_module
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.faces.decode import read_input
from mesti.pipeline.runner import stages
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import StageOutputs, run_faces, run_preprocess
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.sample.generator import IMAGE_DIR
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.read import open_store

SERIAL = ClusterOptions(workers=0, progress=False)


def clip_files(path: Path) -> dict[str, str]:
    """sha256 of every file under a store's clips/ (no paths or timings live there)."""
    clips = path / "clips"
    return {p.relative_to(clips).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(clips.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_pass(small_stores: Path, tmp_path_factory) -> Path:
    """The small sample preprocessed in one pass (the two-stage stores are small_stores')."""
    out = tmp_path_factory.mktemp("one_pass")
    metrics = run_preprocess(small_stores / "manifest" / "manifest.csv", out / "faces.zarr",
                             out / "modalities.zarr", FacesConfig(), ModalitiesConfig(), SERIAL)
    assert metrics["faces"]["clips_ok"] == metrics["modalities"]["clips_ok"] == 4
    return out


def test_one_pass_writes_byte_for_byte_what_the_two_stages_write(small_stores: Path,
                                                                 one_pass: Path) -> None:
    for name in ("faces.zarr", "modalities.zarr"):
        two_stages, fused = clip_files(small_stores / name), clip_files(one_pass / name)
        assert len(fused) > 4 and fused == two_stages, name
        assert open_store(one_pass / name).clip_ids == open_store(small_stores / name).clip_ids


def test_two_workers_list_the_clips_in_manifest_order(small_stores: Path, one_pass: Path,
                                                      tmp_path: Path) -> None:
    """Clips finish in any order on a cluster; the stores (which the trainer reads in their
    order) list them in the manifest's, as a serial run does."""
    manifest = small_stores / "manifest" / "manifest.csv"
    run_preprocess(manifest, tmp_path / "faces.zarr", tmp_path / "modalities.zarr",
                   FacesConfig(), ModalitiesConfig(), ClusterOptions(workers=2, progress=False))
    order = [r.clip_id for r in read_manifest(manifest)]
    for name in ("faces.zarr", "modalities.zarr"):
        assert open_store(tmp_path / name).clip_ids == order
        assert clip_files(tmp_path / name) == clip_files(one_pass / name)


def _no_decoding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a frame was decoded or aligned")

    monkeypatch.setattr(frames_module, "decode_image", refuse)
    monkeypatch.setattr(stages, "_align", refuse)


def test_modality_knob_change_recomputes_from_the_faces_store_without_decoding(
        small_stores: Path, one_pass: Path, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    shutil.copytree(one_pass, work)
    faces_before = clip_files(work / "faces.zarr")
    _no_decoding(monkeypatch)
    manifest = small_stores / "manifest" / "manifest.csv"
    same = run_preprocess(manifest, work / "faces.zarr", work / "modalities.zarr",
                          FacesConfig(), ModalitiesConfig(), SERIAL)
    assert same["faces"]["clips_reused"] == same["modalities"]["clips_reused"] == 4
    # the metrics describe the stores, not which clips this run redid
    assert same["faces"]["face_detection_by_attempt"]["short"] == 1.0
    assert same["modalities"]["apex_policy_used"] == {"annotation": 4}
    assert same["modalities"]["apex_region_difference_mae_frames"] is not None
    changed = ModalitiesConfig(apex_policy="middle")
    result = run_preprocess(manifest, work / "faces.zarr", work / "modalities.zarr",
                            FacesConfig(), changed, SERIAL)
    assert result["faces"]["clips_reused"] == 4 and result["modalities"]["clips_ok"] == 4
    assert clip_files(work / "faces.zarr") == faces_before
    # the same images as the modalities stage computes from that faces store
    monkeypatch.undo()
    from mesti.pipeline.runner.run import run_modalities

    run_modalities(work / "faces.zarr", tmp_path / "reference.zarr", changed, SERIAL)
    assert clip_files(work / "modalities.zarr") == clip_files(tmp_path / "reference.zarr")


def test_face_knob_change_recomputes_both_stores(small_stores: Path, one_pass: Path,
                                                 tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(one_pass, work)
    result = run_preprocess(small_stores / "manifest" / "manifest.csv", work / "faces.zarr",
                            work / "modalities.zarr", FacesConfig(equalise="none"),
                            ModalitiesConfig(), SERIAL)
    assert result["faces"]["clips_ok"] == result["modalities"]["clips_ok"] == 4
    keys = open_store(work / "modalities.zarr")
    faces = open_store(work / "faces.zarr")
    for clip in keys.clip_ids:
        assert keys.clip_attrs(clip)["faces_key"] == faces.clip_attrs(clip)["content_key"]


def test_a_bad_clip_fails_in_faces_and_is_absent_from_modalities(small_stores: Path,
                                                                  tmp_path: Path) -> None:
    records = read_manifest(small_stores / "manifest" / "manifest.csv")
    broken = replace(records[1], frames=[*records[1].frames[:-1], "img99999.jpg"])
    manifest = tmp_path / "manifest.csv"
    write_manifest([records[0], broken, *records[2:]], manifest)
    reports = tmp_path / "reports"
    result = run_preprocess(manifest, tmp_path / "faces.zarr", tmp_path / "modalities.zarr",
                            FacesConfig(), ModalitiesConfig(), SERIAL,
                            StageOutputs(reports / "faces.json", reports / "faces.csv"),
                            StageOutputs(reports / "modalities.json"))
    assert result["faces"]["failures"] == {"input_missing": 1}
    assert result["modalities"]["clips"] == result["modalities"]["clips_ok"] == 3
    assert broken.clip_id not in open_store(tmp_path / "modalities.zarr").clip_ids
    assert broken.clip_id in (reports / "faces.csv").read_text()
    assert (reports / "modalities.json").is_file()


def test_refuses_one_path_for_both_stores_and_a_foreign_modalities_path(
        small_stores: Path, tmp_path: Path) -> None:
    manifest = small_stores / "manifest" / "manifest.csv"
    with pytest.raises(store.WriteRefused):
        run_preprocess(manifest, tmp_path / "s.zarr", tmp_path / "s.zarr", FacesConfig(),
                       ModalitiesConfig(), SERIAL)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(store.NotOwned):
        run_preprocess(manifest, tmp_path / "faces.zarr", foreign, FacesConfig(),
                       ModalitiesConfig(), SERIAL)
    assert not (tmp_path / "faces.zarr").exists()  # refused before anything was written
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"


def test_input_is_hashed_from_the_bytes_it_decodes(small_stores: Path) -> None:
    record = read_manifest(small_stores / "manifest" / "manifest.csv")[0]
    folder = Path(record.root) / record.source
    oracle = hashlib.sha256()
    for name in record.frames:
        oracle.update((folder / name).read_bytes() + b"\0")
    clip = read_input(record.clip_id, "images", folder, record.frames)
    assert clip.sha256 == oracle.hexdigest()
    decoded = list(clip.iter_frames())
    assert np.array_equal(decoded[0], cv2.imread(str(folder / record.frames[0])))
    missing = read_input(record.clip_id, "images", folder, [*record.frames[:2], "nope.jpg"])
    assert missing.sha256 != clip.sha256 and missing.data[-1] is None


def test_grey_clips_decoded_as_grey_give_the_pixels_of_colour_decoding(
        small_stores: Path, tmp_path: Path, monkeypatch) -> None:
    """SAMM-like grey JPEGs go through the grey path (a third of the pixel work); forcing
    colour decoding of the same files gives the same faces store, byte for byte."""
    grey_root = tmp_path / "grey"
    shutil.copytree(small_stores / "raw", grey_root)
    for path in (grey_root / IMAGE_DIR).rglob("*.jpg"):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    records = read_manifest(small_stores / "manifest" / "manifest.csv")[:2]
    manifest = tmp_path / "manifest.csv"
    write_manifest([replace(r, root=str(grey_root / IMAGE_DIR)) for r in records], manifest)
    kinds = []
    real_decode = frames_module.decode_image

    def watched(*args, **kwargs):
        image = real_decode(*args, **kwargs)
        kinds.append(image.ndim)
        return image

    monkeypatch.setattr(frames_module, "decode_image", watched)
    run_faces(manifest, tmp_path / "grey.zarr", FacesConfig(), SERIAL)
    assert kinds and set(kinds) == {2}
    real_header = frames_module._header
    monkeypatch.setattr(frames_module, "_header",
                        lambda data: (*real_header(data)[:2], 3))  # "colour": IMREAD_COLOR
    kinds.clear()
    run_faces(manifest, tmp_path / "colour.zarr", FacesConfig(), SERIAL)
    assert set(kinds) == {3}
    grey, colour = open_store(tmp_path / "grey.zarr"), open_store(tmp_path / "colour.zarr")
    assert grey.clip_ids == colour.clip_ids and len(grey.clip_ids) == 2
    for clip in grey.clip_ids:
        frames = grey.frames(clip)
        assert np.array_equal(frames, colour.frames(clip))
        assert np.array_equal(frames[..., 0], frames[..., 2])  # grey in every channel


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_whole_chunks_written_directly_equal_zarrs_own(tmp_path: Path, dtype) -> None:
    data = (np.random.default_rng(0).random((5, 7, 6, 3)) * 250).astype(dtype)
    store.write_clip(tmp_path / "direct.zarr", "c", {"frames": data}, {"a": 1}, "key",
                     compress=False)
    direct = zarr.open_array(str(tmp_path / "direct.zarr"), path="clips/c/frames", mode="r")
    reference = zarr.create_array(str(tmp_path / "zarr.zarr"), shape=data.shape,
                                  dtype=data.dtype, chunks=data.shape,
                                  compressors=store.CHECKSUM_ONLY, fill_value=0,
                                  config={"write_empty_chunks": True})
    reference[...] = data
    (key,) = store.data_keys(direct)
    written = (tmp_path / "direct.zarr" / key).read_bytes()
    assert written == (tmp_path / "zarr.zarr" / "c/0/0/0/0").read_bytes()
    assert np.array_equal(direct[...], data)  # zarr reads it and checks its crc32c
    corrupt = bytearray(written)
    corrupt[10] ^= 1
    (tmp_path / "direct.zarr" / key).write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="checksum"):
        direct[...]


@pytest.mark.parametrize("equalise", ["none", "luma", "clahe"])
def test_equalising_a_bgr_crop_gives_the_rgb_crops_values(equalise: str) -> None:
    """The faces stage equalises the warped BGR crop directly (one colour conversion less)."""
    from mesti.pipeline.faces.align import equalise as equalised

    rng = np.random.default_rng(3)
    bgr = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (5, 5), 2)
    config = FacesConfig(equalise=equalise)
    rgb = equalised(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), config)
    assert np.array_equal(equalised(bgr, config, "BGR"), rgb)


def test_image_shards_written_directly_equal_zarrs_own(tmp_path: Path) -> None:
    """Modality images (one zstd chunk per image in one shard, an all-zero image included)."""
    data = np.random.default_rng(1).integers(0, 40, (4, 9, 8, 3), dtype=np.uint8)
    data[2] = 0
    store.write_clip(tmp_path / "direct.zarr", "c", {"images": data}, {}, "key",
                     per_image=("images",))
    direct = zarr.open_array(str(tmp_path / "direct.zarr"), path="clips/c/images", mode="r")
    reference = zarr.create_array(str(tmp_path / "zarr.zarr"), shape=data.shape,
                                  dtype=data.dtype, chunks=(1, *data.shape[1:]),
                                  shards=data.shape, compressors=store.COMPRESSED,
                                  fill_value=0, config={"write_empty_chunks": True})
    reference[...] = data
    (key,) = store.data_keys(direct)
    assert (tmp_path / "direct.zarr" / key).read_bytes() == \
        (tmp_path / "zarr.zarr" / "c/0/0/0/0").read_bytes()
    assert np.array_equal(direct[...], data) and np.array_equal(direct[1], data[1])

def test_the_command_writes_both_stores_and_reports_and_refuses_a_foreign_path(
        small_stores: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mesti.cli import main

    manifest = small_stores / "manifest" / "manifest.csv"
    options = ["--workers", "0", "--no-progress", "--params", str(tmp_path / "none.yaml")]
    (tmp_path / "none.yaml").write_text("{}\n")
    result = CliRunner().invoke(main, [
        "preprocess", str(manifest), str(tmp_path / "f.zarr"), str(tmp_path / "m.zarr"),
        "--faces-metrics", str(tmp_path / "f.json"),
        "--modalities-failures", str(tmp_path / "m.csv"), *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f.json").is_file() and (tmp_path / "m.csv").is_file()
    assert open_store(tmp_path / "m.zarr").clip_ids == open_store(tmp_path / "f.zarr").clip_ids
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    refused = CliRunner().invoke(main, ["preprocess", str(manifest), str(tmp_path / "f2.zarr"),
                                        str(tmp_path / "notes"), *options])
    assert refused.exit_code == 1 and "notes" in refused.output
    assert not (tmp_path / "f2.zarr").exists()
