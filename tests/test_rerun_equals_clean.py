"""A resumed or repeated `mesti preprocess` writes the stores a clean run writes, byte for
byte: after a run killed part-way (SIGKILL), and after clips leave the manifest and come
back. Every file of both stores is compared, root metadata included (the runs use the same
paths, so the stores' recorded sources agree)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fakes
import pytest
from click.testing import CliRunner
from faults import group_alive
from mesti.datasets_manifest.manifest import read_manifest, write_manifest
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.read import StoreError, open_store
from mesti.pipeline.stores.verify import verify_store

from mesti.cli import main

BIN = Path(sys.executable).parent
STORES = ("faces.zarr", "modalities.zarr")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def preprocess_args(work: Path, workers: int = 0) -> list[str]:
    return ["preprocess", str(work / "manifest.csv"), str(work / "faces.zarr"),
            str(work / "modalities.zarr"), "--workers", str(workers), "--no-progress",
            "--params", str(work / "params.yaml")]


def preprocess(work: Path) -> dict:
    result = CliRunner().invoke(main, preprocess_args(work))
    assert result.exit_code == 0, result.output
    return {name: tree(work / name) for name in STORES}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """4 clips of the synthetic sample in ``work/``, and the bytes of the stores a clean
    `mesti preprocess` writes there (removed again, for each test to rebuild)."""
    work = tmp_path_factory.mktemp("rerun")
    fakes.sample_dataset(work, seed=11, subjects=2, min_clips=2, max_clips=2, min_frames=12,
                         max_frames=14)
    write_manifest(read_manifest(work / "manifest" / "manifest.csv"), work / "manifest.csv")
    (work / "params.yaml").write_text("faces: {}\nmodalities: {}\n")
    stores = preprocess(work)
    assert len(open_store(work / "modalities.zarr").clip_ids) == 4
    for name in STORES:
        shutil.rmtree(work / name)
    return work, stores


@pytest.fixture
def work(clean: tuple[Path, dict]) -> Path:
    work = clean[0]
    yield work
    for name in STORES:
        shutil.rmtree(work / name, ignore_errors=True)
    write_manifest(read_manifest(work / "manifest" / "manifest.csv"), work / "manifest.csv")


def test_clips_that_leave_and_come_back_give_the_clean_stores(clean, work: Path) -> None:
    records = read_manifest(work / "manifest" / "manifest.csv")
    preprocess(work)
    write_manifest(records[:2], work / "manifest.csv")
    preprocess(work)
    assert open_store(work / "modalities.zarr").attrs["unlisted"] == \
        [r.clip_id for r in records[2:]]
    write_manifest(records, work / "manifest.csv")  # the two come back: reused in faces
    result = CliRunner().invoke(main, preprocess_args(work))
    assert result.exit_code == 0, result.output
    assert '"clips_failed": 0' in result.output
    for name in STORES:
        assert tree(work / name) == clean[1][name], name
        assert verify_store(work / name) == []


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_killed_after_two_clips_then_resumed_gives_the_clean_stores(clean, work: Path,
                                                                          workers: int) -> None:
    """Killed with its workers (SIGKILL to the whole process group, as a node dies)."""
    killed = subprocess.Popen([str(BIN / "mesti"), *preprocess_args(work, workers)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        done: list[Path] = []
        while time.monotonic() < deadline and killed.poll() is None and len(done) < 2:
            done = [p for p in (work / "modalities.zarr").glob("clips/*/zarr.json")
                    if '"ok"' in p.read_text()]
            time.sleep(0.01)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    finally:
        if group_alive(killed.pid):
            os.killpg(killed.pid, signal.SIGKILL)
    assert len(done) >= 2 and killed.returncode == -signal.SIGKILL
    assert (work / "faces.zarr" / store.LOCK_FILE).exists()  # left by the killed run
    assert open_store(work / "faces.zarr", require_complete=False).attrs["complete"] is False
    result = CliRunner().invoke(main, preprocess_args(work))
    assert result.exit_code == 0, result.output
    assert '"clips_failed": 0' in result.output and '"clips_reused": 0' not in result.output
    for name in STORES:
        assert tree(work / name) == clean[1][name], name
        assert verify_store(work / name) == []


def test_a_corrupt_reused_clip_is_repaired_and_recomputed(clean, work: Path) -> None:
    preprocess(work)
    faces = work / "faces.zarr"
    clip = open_store(faces).clip_ids[2]
    (chunk,) = [p for p in (faces / "clips" / clip / "frames").rglob("*")
                if p.is_file() and p.name != "zarr.json"]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x40
    chunk.write_bytes(bytes(data))
    # the next run reuses the clip on its content key: only verify sees the damage
    result = CliRunner().invoke(main, preprocess_args(work))
    assert result.exit_code == 0 and '"clips_failed": 0' in result.output, result.output
    verify = CliRunner().invoke(main, ["cache", "verify", str(faces)])
    assert verify.exit_code == 1 and f"clip {clip}, frames: corrupt" in verify.output
    repair = CliRunner().invoke(main, ["cache", "verify", str(faces), "--repair"])
    assert repair.exit_code == 0, repair.output
    assert f"dropped 1 clip(s) ({clip})" in repair.output
    assert not (faces / "clips" / clip).exists()
    with pytest.raises(StoreError, match="incomplete"):
        open_store(faces)
    assert CliRunner().invoke(main, ["cache", "verify", str(faces)]).exit_code == 1
    stores = preprocess(work)
    for name in STORES:
        assert stores[name] == clean[1][name], name
        assert verify_store(work / name) == []
    # a zip cannot be repaired: one line
    export_store(faces, work / "faces.zip")
    result = CliRunner().invoke(main, ["cache", "verify", str(work / "faces.zip"), "--repair"])
    assert result.exit_code == 1 and "--repair works on a store folder" in result.output
    (work / "faces.zip").unlink()
