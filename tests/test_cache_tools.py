"""mesti cache verify / info / export on small real stores, read from a directory, a zip file
and a loopback HTTP server: corruption and tampering are found and named, exports round-trip,
and the reader refuses what is not a store it can trust."""

import hashlib
import http.server
import json
import re
import shutil
import zipfile
from pathlib import Path

import fakes
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from consolidated import mirror
from loopback import RangeHandler, serve
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces, run_modalities
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.stores.archive import CHECKSUMS, MANIFEST
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.info import store_info
from mesti.pipeline.stores.read import StoreError, open_store
from mesti.pipeline.stores.verify import verify_store

from mesti.cli import main

SERIAL = ClusterOptions(workers=0, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """2 subjects x 2 clips of the synthetic sample: a faces store, a modality store, and
    both exported as zip files under export/."""
    tmp = tmp_path_factory.mktemp("cache_tools")
    fakes.sample_dataset(tmp, seed=5, subjects=2, min_clips=2, max_clips=2, min_frames=16,
                         max_frames=20)
    run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", FacesConfig(), SERIAL)
    run_modalities(tmp / "faces.zarr", tmp / "modalities.zarr", ModalitiesConfig(), SERIAL)
    (tmp / "export").mkdir()
    export_store(tmp / "faces.zarr", tmp / "export" / "faces.zip")
    export_store(tmp / "modalities.zarr", tmp / "export" / "modalities.zip")
    return tmp


def cli(*args: str):
    return CliRunner().invoke(main, ["cache", *map(str, args)])


def copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def flip(path: Path, offset: int | None = None) -> None:
    """Flip every bit of one byte (the middle one by default)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_attrs(path: Path, **changes) -> None:
    """Change attributes in a zarr.json by hand, as someone editing a store would."""
    document = json.loads(path.read_text())
    document["attributes"].update(changes)
    path.write_text(json.dumps(document))
    mirror(path)


def codes(problems) -> set[tuple]:
    return {(p.clip, p.array, p.code) for p in problems}


# verify -----------------------------------------------------------------------------------


def test_verify_passes_on_sound_stores(built: Path) -> None:
    for name in ("faces.zarr", "modalities.zarr"):
        assert verify_store(built / name) == []
        result = cli("verify", built / name)
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


@pytest.mark.parametrize("store, array", [("faces.zarr", "frames"),
                                          ("modalities.zarr", "images")])
@pytest.mark.parametrize("where", ["chunk", "shard index"])
def test_a_flipped_byte_is_found_and_the_clip_named(built: Path, tmp_path: Path, store: str,
                                                    array: str, where: str) -> None:
    path = copy(built / store, tmp_path)
    clip = open_store(path).clip_ids[1]
    shard = path / "clips" / clip / array / "c" / "0" / "0" / "0" / "0"
    flip(shard, None if where == "chunk" else shard.stat().st_size - 6)
    problems = verify_store(path)
    assert codes(problems) == {(clip, array, "corrupt")}
    if where == "chunk" and array == "images":  # image chunks: which image is broken
        assert re.search(r"1 of \d+ images unreadable \(positions \d+\)", problems[0].message)
    result = cli("verify", path)
    assert result.exit_code == 1
    assert f"clip {clip}, {array}: corrupt" in result.output
    assert "1 problem(s) in 1 clip(s)" in result.output


def test_every_problem_of_every_clip_is_reported_together(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    a, b, c, d = open_store(path).clip_ids
    flip(path / "clips" / a / "frames" / "c" / "0" / "0" / "0" / "0")
    edit_attrs(path / "clips" / b / "zarr.json", label3="surprise")
    (path / "clips" / c / "landmarks" / "c" / "0" / "0").unlink()
    edit_attrs(path / "clips" / d / "zarr.json", status="writing")
    edit_attrs(path / "zarr.json", complete=False)
    problems = verify_store(path)
    assert codes(problems) == {(None, None, "incomplete"), (a, "frames", "corrupt"),
                               (b, None, "content_key"), (c, "landmarks", "missing_data"),
                               (d, None, "status")}
    output = cli("verify", path).output
    assert all(clip in output for clip in (a, b, c, d)) and "5 problem(s) in 4 clip(s)" in output


def test_a_tampered_attribute_is_a_content_key_mismatch(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    clip = open_store(path).clip_ids[0]
    label = open_store(path).clip_attrs(clip)["label3"]
    edit_attrs(path / "clips" / clip / "zarr.json",
               label3="positive" if label != "positive" else "negative")
    problems = verify_store(path)
    assert codes(problems) == {(clip, None, "content_key")}
    assert "recomputed" in problems[0].message


def test_provenance_that_disagrees_with_the_store_is_reported(built: Path,
                                                              tmp_path: Path) -> None:
    path = copy(built / "modalities.zarr", tmp_path)
    params = {**open_store(path).attrs["params"], "apex_policy": "middle"}
    edit_attrs(path / "zarr.json", params=params)
    problems = verify_store(path)
    assert {p.code for p in problems} == {"provenance"}
    assert {p.clip for p in problems} == set(open_store(path).clip_ids)


def test_an_incomplete_store_is_reported(built: Path, tmp_path: Path) -> None:
    path = copy(built / "modalities.zarr", tmp_path)
    edit_attrs(path / "zarr.json", complete=False)
    assert codes(verify_store(path)) == {(None, None, "incomplete")}
    with pytest.raises(StoreError, match="incomplete"):
        open_store(path)
    result = cli("verify", path)
    assert result.exit_code == 1 and "store: incomplete" in result.output


def test_wrong_shapes_are_reported(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    clip = open_store(path).clip_ids[2]
    attrs = open_store(path).clip_attrs(clip)
    edit_attrs(path / "clips" / clip / "zarr.json", n_frames=attrs["n_frames"] + 1)
    problems = verify_store(path)
    assert (clip, "frames", "shape") in codes(problems)  # and its key no longer matches
    assert "expected" in next(p.message for p in problems if p.code == "shape")


# info -------------------------------------------------------------------------------------


def test_info_lists_clips_arrays_and_provenance(built: Path) -> None:
    faces, modalities = open_store(built / "faces.zarr"), open_store(built / "modalities.zarr")
    result = cli("info", built / "faces.zarr", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["kind"], info["dataset"], info["complete"], info["failures"]) == \
        ("faces", "casme2", True, 0)
    assert [c["clip_id"] for c in info["clips"]] == faces.clip_ids
    assert info["params"]["size"] == 224 and "zarr" in info["versions"]
    for clip in info["clips"]:
        n = faces.clip_attrs(clip["clip_id"])["n_frames"]
        assert clip["arrays"] == {"frames": {"shape": [n, 224, 224, 3], "dtype": "uint8"},
                                  "landmarks": {"shape": [468, 2], "dtype": "float32"}}
    info = store_info(built / "modalities.zarr")
    assert info["images"] == modalities.names and info["n_clips"] == 4
    assert {json.dumps(c["arrays"]) for c in info["clips"]} == {json.dumps(
        {"images": {"shape": [5, 224, 224, 3], "dtype": "uint8"}})}
    text = cli("info", built / "faces.zarr").output
    assert "faces store" in text and "complete   yes" in text
    assert all(clip in text for clip in faces.clip_ids)


# export -----------------------------------------------------------------------------------


def test_export_zip_layout_and_checksums(built: Path) -> None:
    zip_path = built / "export" / "faces.zip"
    with zipfile.ZipFile(zip_path) as archive:
        members = {m.filename: m for m in archive.infolist()}
        sums = {key: digest for digest, key in (
            line.split("  ") for line in archive.read(CHECKSUMS).decode().splitlines())}
        assert set(sums) == set(members) - {CHECKSUMS}
        assert all(hashlib.sha256(archive.read(k)).hexdigest() == v for k, v in sums.items())
        manifest = json.loads(archive.read(MANIFEST))
    assert "zarr.json" in members and all(
        m.compress_type == zipfile.ZIP_STORED for name, m in members.items() if "/c/" in name)
    assert manifest["clips"] == open_store(built / "faces.zarr").clip_ids
    assert manifest["kind"] == "faces" and manifest["provenance"]["params"]["size"] == 224
    again = built / "again.zip"
    result = cli("export", built / "faces.zarr", again)
    assert result.exit_code == 0 and "4 clips" in result.output
    assert again.read_bytes() == zip_path.read_bytes()  # the same store, the same bytes


def test_a_zip_reads_as_the_directory_did(built: Path) -> None:
    for name in ("faces", "modalities"):
        directory, packed = built / f"{name}.zarr", built / "export" / f"{name}.zip"
        assert verify_store(packed) == []
        assert cli("verify", packed).exit_code == 0
        with open_store(directory) as one, open_store(packed) as two:
            assert one.clip_ids == two.clip_ids and one.attrs == two.attrs
            for clip in one.clip_ids:
                assert one.clip_attrs(clip) == two.clip_attrs(clip)
                for array in ("frames", "landmarks") if name == "faces" else ("images",):
                    assert np.array_equal(one.array(clip, array)[...],
                                          two.array(clip, array)[...])
            if name == "modalities":
                assert np.array_equal(one.images("mesti"), two.images("mesti"))


def test_a_changed_member_of_an_export_fails_its_checksum(built: Path, tmp_path: Path) -> None:
    """A label edited inside an export fails the archive's sums, the clip's key and the
    root's consolidated copy of the clip's metadata."""
    source = built / "export" / "modalities.zip"
    clip = open_store(source).clip_ids[0]
    key = f"clips/{clip}/zarr.json"
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(changed, "w") as new:
        for member in old.infolist():
            data = old.read(member)
            if member.filename == key:
                document = json.loads(data)
                document["attributes"]["label3"] = "tampered"
                data = json.dumps(document).encode()
            new.writestr(member, data)
    assert codes(verify_store(changed)) == {(clip, None, "checksum"), (clip, None, "content_key"),
                                            (clip, None, "consolidated")}


def test_export_refuses_a_corrupt_store(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    flip(path / "clips" / open_store(path).clip_ids[0] / "landmarks" / "c" / "0" / "0")
    with pytest.raises(StoreError, match="nothing exported"):
        export_store(path, tmp_path / "out.zip")
    result = cli("export", path, tmp_path / "out.zip")
    assert result.exit_code == 1 and "problem" in result.output
    assert not (tmp_path / "out.zip").exists()
    assert not list(tmp_path.glob("*.partial"))


# over HTTP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def url(built: Path):
    server, thread = serve(built, RangeHandler)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_verify_read_and_export_over_http(built: Path, url: str, tmp_path: Path) -> None:
    for location in (f"{url}/faces.zarr", f"{url}/export/faces.zip",
                     f"zip::{url}/export/modalities.zip"):
        assert verify_store(location) == [], location
    result = cli("verify", f"{url}/modalities.zarr")
    assert result.exit_code == 0, result.output
    local = open_store(built / "modalities.zarr")
    for location in (f"{url}/modalities.zarr", f"{url}/export/modalities.zip"):
        remote = open_store(location)
        assert remote.clip_ids == local.clip_ids
        assert np.array_equal(remote.images("dynamic_raw"), local.images("dynamic_raw"))
    assert json.loads(cli("info", f"{url}/export/faces.zip", "--json").output)["n_clips"] == 4
    export_store(f"{url}/modalities.zarr", tmp_path / "remote.zip")
    assert (tmp_path / "remote.zip").read_bytes() == \
        (built / "export" / "modalities.zip").read_bytes()


def test_training_reads_a_store_over_http(url: str, tmp_path: Path) -> None:
    from mesti.train.run import TrainConfig, run_training

    config = TrainConfig(input_size=32, epochs=1, batch_size=4, figure_clips=0)
    metrics = run_training([f"{url}/export/modalities.zip"], tmp_path / "run", config,
                           progress=False)
    assert metrics["clips"] == 4 and metrics["folds"] == 2
    assert (tmp_path / "run" / "predictions.csv").is_file()


def test_a_server_without_range_requests_is_refused(built: Path) -> None:
    server, thread = serve(built, http.server.SimpleHTTPRequestHandler)
    try:
        with pytest.raises(StoreError, match="range"):
            open_store(f"http://127.0.0.1:{server.server_address[1]}/faces.zarr")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_missing_url_is_not_a_store(url: str) -> None:
    with pytest.raises(StoreError, match="no zarr store"):
        open_store(f"{url}/absent.zarr")


# untrusted input --------------------------------------------------------------------------


@pytest.mark.parametrize("clip_id", ["../escape", "a/b", ".hidden", "", "sub01 EP01", 7])
def test_unsafe_clip_ids_are_refused(built: Path, tmp_path: Path, clip_id) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    edit_attrs(path / "zarr.json", clips=[*open_store(path).clip_ids, clip_id])
    with pytest.raises(StoreError, match="not a single safe path component"):
        open_store(path)
    result = cli("verify", path)
    assert result.exit_code == 1 and "safe path component" in result.output


def test_another_layout_version_is_refused(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    edit_attrs(path / "zarr.json", mesti_store=2)
    with pytest.raises(StoreError, match="layout version 2; this reader reads layout version 1"):
        open_store(path)


def test_what_is_not_a_store_is_refused(tmp_path: Path) -> None:
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    (tmp_path / "text.zip").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    for location, message in [("plain.zarr", "not a mesti store"),
                              ("text.zip", "not a zip file"),
                              ("other.zip", "no zarr store"),
                              ("absent.zarr", "no zarr store")]:
        with pytest.raises(StoreError, match=message):
            open_store(tmp_path / location)
        assert cli("info", tmp_path / location).exit_code == 1


def test_non_numeric_or_foreign_codec_arrays_are_refused(built: Path, tmp_path: Path) -> None:
    path = copy(built / "faces.zarr", tmp_path)
    one, two = open_store(path).clip_ids[:2]
    shutil.rmtree(path / "clips" / one / "landmarks")
    zarr.create_array(str(path), name=f"clips/{one}/landmarks", shape=(2,), dtype=str)
    mirror(path / "clips" / one / "landmarks" / "zarr.json")
    metadata = path / "clips" / two / "landmarks" / "zarr.json"
    document = json.loads(metadata.read_text())
    document["codecs"].insert(1, {"name": "gzip", "configuration": {"level": 1}})
    metadata.write_text(json.dumps(document))
    mirror(metadata)
    with pytest.raises(StoreError, match="numeric arrays only"):
        open_store(path).landmarks(one)
    with pytest.raises(StoreError, match="codecs"):
        open_store(path).landmarks(two)
    assert {(one, "landmarks", "refused"), (two, "landmarks", "refused")} <= \
        codes(verify_store(path))
