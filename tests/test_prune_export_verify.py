"""What prune deletes (only this store's clip groups), what export writes (every array of the
store spec, flow included) and what verify checks (every array of every store kind)."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from mesti.datasets_manifest.manifest import read_manifest, write_manifest
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_sequences
from mesti.pipeline.runner.sequences import SequencesConfig
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.read import open_store
from mesti.pipeline.stores.verify import verify_store

from mesti.cli import main

SERIAL = ClusterOptions(workers=0, progress=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# prune ----------------------------------------------------------------------------------------


def test_prune_deletes_only_this_stores_clips_and_names_the_rest(small_stores: Path,
                                                                 tmp_path: Path) -> None:
    faces = Path(shutil.copytree(small_stores / "faces.zarr", tmp_path / "faces.zarr"))
    records = read_manifest(small_stores / "manifest" / "manifest.csv")
    write_manifest(records[:-1], tmp_path / "fewer.csv")
    gone = records[-1].clip_id
    clips = faces / "clips"
    (clips / "my_notes").mkdir()
    (clips / "my_notes" / "ideas.txt").write_text("mine")
    # a folder elsewhere holding a real clip, linked into clips/
    elsewhere = Path(shutil.copytree(clips / records[0].clip_id, tmp_path / "kept" / "clip"))
    (clips / "linked").symlink_to(elsewhere, target_is_directory=True)
    # a modality clip (another kind) copied into the faces store
    modality = records[1].clip_id
    shutil.copytree(small_stores / "modalities.zarr" / "clips" / modality, clips / "from_mod")
    edit = json.loads((clips / "from_mod" / "zarr.json").read_text())
    edit["attributes"]["clip_id"] = "from_mod"
    (clips / "from_mod" / "zarr.json").write_text(json.dumps(edit))
    kept = {name: tree(clips / name) for name in ("my_notes", "linked", "from_mod")}
    elsewhere_before = tree(elsewhere)
    (tmp_path / "params.yaml").write_text("faces: {}\n")
    result = CliRunner().invoke(main, [
        "faces", str(tmp_path / "fewer.csv"), str(faces), "--workers", "0", "--no-progress",
        "--params", str(tmp_path / "params.yaml"), "--prune",
        "--metrics", str(tmp_path / "metrics.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.timing.json").read_text())["clips_pruned"] == [gone]
    assert not (clips / gone).exists()
    for name, files in kept.items():
        assert tree(clips / name) == files, name
    assert (clips / "linked").is_symlink() and tree(elsewhere) == elsewhere_before
    assert f"{clips / 'my_notes'}: no zarr.json; not a clip of this store" in result.output
    assert f"{clips / 'linked'}: a symbolic link; not a clip" in result.output
    assert f"{clips / 'from_mod'}: holds images, not arrays of a faces clip" in result.output
    written = open_store(faces)
    assert written.clip_ids == [r.clip_id for r in records[:-1]]
    assert written.attrs["unlisted"] == [] and verify_store(faces) == []


def test_without_prune_only_clips_are_unlisted(small_stores: Path, tmp_path: Path) -> None:
    faces = Path(shutil.copytree(small_stores / "faces.zarr", tmp_path / "faces.zarr"))
    (faces / "clips" / "my_notes").mkdir()
    keep = open_store(faces).clip_ids
    done = store.finalise(faces, keep[:-1], {}, in_manifest=keep[:-1])
    assert done["unlisted"] == [keep[-1]] and done["pruned"] == []
    assert done["foreign"] == [f"{faces / 'clips' / 'my_notes'}: no zarr.json; not a clip of "
                               "this store, left as it is"]
    assert open_store(faces).attrs["unlisted"] == [keep[-1]]


# export and verify: every array of the spec ------------------------------------------------


@pytest.fixture(scope="module")
def sequences(small_stores: Path, tmp_path_factory) -> Path:
    """A sequences store with flow, from the small sample's faces store."""
    out = tmp_path_factory.mktemp("sequences") / "sequences.zarr"
    metrics = run_sequences(small_stores / "faces.zarr", out,
                            SequencesConfig(size=32, length=4, flow=True), SERIAL)
    assert metrics["clips_ok"] == 4
    return out


def flow_chunk(path: Path, clip: str) -> Path:
    (chunk,) = [p for p in (path / "clips" / clip / "flow").rglob("*")
                if p.is_file() and p.name != "zarr.json"]
    return chunk


def test_export_of_a_sequences_store_holds_every_flow(sequences: Path, tmp_path: Path) -> None:
    out = tmp_path / "sequences.zip"
    manifest = export_store(sequences, out)
    source, exported = open_store(sequences), open_store(out)
    assert exported.clip_ids == source.clip_ids == manifest["clips"]
    for clip in source.clip_ids:
        mine, theirs = source.sequence(clip), exported.sequence(clip)
        assert sorted(theirs) == sorted(store.SPEC["sequences"]) == sorted(mine)
        for name, values in mine.items():
            assert values.tobytes() == theirs[name].tobytes(), (clip, name)
    exported.close()
    assert verify_store(out) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "shape", "remove"])
def test_verify_checks_the_flow_of_a_sequences_store(sequences: Path, tmp_path: Path,
                                                     damage: str) -> None:
    work = Path(shutil.copytree(sequences, tmp_path / "sequences.zarr"))
    assert verify_store(work) == []
    clip = open_store(work).clip_ids[1]
    chunk = flow_chunk(work, clip)
    data = bytearray(chunk.read_bytes())
    if damage == "truncate":
        chunk.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[len(data) // 3] ^= 0x01
        chunk.write_bytes(bytes(data))
    elif damage == "shape":
        metadata = work / "clips" / clip / "flow" / "zarr.json"
        document = json.loads(metadata.read_text())
        document["shape"][1] -= 1
        metadata.write_text(json.dumps(document))
    else:
        shutil.rmtree(work / "clips" / clip / "flow")
    problems = verify_store(work)
    assert problems and {p.clip for p in problems} == {clip}
    assert {p.array for p in problems} == {"flow"}
    code = {"truncate": "corrupt", "flip": "corrupt", "shape": "shape", "remove": "missing"}
    assert code[damage] in {p.code for p in problems}, problems
    result = CliRunner().invoke(main, ["cache", "verify", str(work)])
    assert result.exit_code == 1 and f"clip {clip}, flow:" in result.output


# damaged exported zips ----------------------------------------------------------------------


def test_a_byte_flipped_anywhere_in_an_exported_zip_is_reported(small_stores: Path,
                                                                 tmp_path: Path) -> None:
    """Members' data, their local headers, the directory: every flip is a problem or one
    clean line, never a traceback nor "ok"."""
    original = (small_stores / "export" / "modalities.zip").read_bytes()
    assert verify_store(small_stores / "export" / "modalities.zip") == []
    size = len(original)
    positions = sorted({*range(0, 64, 3), *range(size // 7, size, size // 7),
                        *range(size - 420, size, 11)})
    damaged = tmp_path / "damaged.zip"
    for position in positions:
        data = bytearray(original)
        data[position] ^= 0xFF
        damaged.write_bytes(bytes(data))
        result = CliRunner().invoke(main, ["cache", "verify", str(damaged)])
        assert isinstance(result.exception, SystemExit), (position, result.exception)
        assert result.exit_code == 1 and "ok (every chunk" not in result.output, position
        info = CliRunner().invoke(main, ["cache", "info", str(damaged)])
        assert info.exception is None or isinstance(info.exception, SystemExit), \
            (position, info.exception)


def test_a_truncated_zip_over_http_is_one_clean_line(small_stores: Path,
                                                     tmp_path: Path) -> None:
    from loopback import serving

    original = (small_stores / "export" / "modalities.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(original[: len(original) // 2])
    with serving(tmp_path) as base:
        url = f"{base}/cut.zip"
        for command in (["cache", "verify", url], ["cache", "info", url],
                        ["train", url, str(tmp_path / "run")]):
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit), \
                (command, result.exception)
            assert result.output.strip().splitlines() == [
                f"Error: {url}: cannot open: File is not a zip file"], command


def test_a_clip_that_cannot_be_pruned_stays_unlisted(small_stores: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    faces = Path(shutil.copytree(small_stores / "faces.zarr", tmp_path / "faces.zarr"))
    keep = open_store(faces).clip_ids
    real = shutil.rmtree

    def refuse_one(path, *args, **kwargs):
        if Path(path).name == keep[-1]:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store.shutil, "rmtree", refuse_one)
    done = store.finalise(faces, keep[:1], {}, prune=True)
    assert done["pruned"] == keep[1:-1] and done["unlisted"] == [keep[-1]]
    assert done["foreign"] == [f"{faces / 'clips' / keep[-1]}: could not be deleted "
                               "(Permission denied); kept, listed as unlisted"]
    written = open_store(faces)
    assert written.clip_ids == keep[:1] and written.attrs["unlisted"] == [keep[-1]]
    assert (faces / "clips" / keep[-1] / "zarr.json").is_file()
