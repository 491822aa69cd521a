"""What a stage may change: only a store it owns, one writer at a time, never a clip it was
not asked to delete, never a clip whose upstream was edited. Each refusal is named, has its
exit code, and leaves every byte of the store and around it as it was."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import fakes
import numpy as np
import pytest
from click.testing import CliRunner
from consolidated import forget, mirror
from faults import group_alive
from mesti.datasets_manifest.manifest import read_manifest, write_manifest
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import EmptyInput, run_faces, run_modalities
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.read import open_store
from mesti.pipeline.stores.verify import verify_store

from mesti.cli import main

BIN = Path(sys.executable).parent
SERIAL = ClusterOptions(workers=0, progress=False)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def same_faces(a: Path, b: Path, clips: list[str] | None = None) -> None:
    one, two = open_store(a), open_store(b)
    ids = one.clip_ids if clips is None else clips
    for clip in ids:
        assert np.array_equal(one.frames(clip), two.frames(clip)), clip
        assert one.clip_attrs(clip)["content_key"] == two.clip_attrs(clip)["content_key"]


def same_modalities(a: Path, b: Path, clips: list[str]) -> None:
    one, two = open_store(a), open_store(b)
    for clip in clips:
        assert one.clip_attrs(clip)["content_key"] == two.clip_attrs(clip)["content_key"]
        assert np.array_equal(one.array(clip, "images")[...], two.array(clip, "images")[...])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """4 clips of the synthetic sample, their faces and modality stores from clean runs."""
    tmp = tmp_path_factory.mktemp("guarantees")
    fakes.sample_dataset(tmp, seed=11, subjects=2, min_clips=2, max_clips=2, min_frames=12,
                         max_frames=14)
    run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", FacesConfig(), SERIAL)
    run_modalities(tmp / "faces.zarr", tmp / "modalities.zarr", ModalitiesConfig(), SERIAL)
    (tmp / "params.yaml").write_text("faces: {}\nmodalities: {}\n")
    return tmp


@pytest.fixture
def work(built: Path, tmp_path: Path) -> Path:
    """A folder holding a copy of the faces store and an unrelated file beside it."""
    shutil.copytree(built / "faces.zarr", tmp_path / "faces.zarr")
    (tmp_path / "notes.txt").write_text("not the pipeline's")
    return tmp_path


def stage(built: Path, *args: str):
    command = [*map(str, args), "--workers", "0", "--no-progress", "--params",
               str(built / "params.yaml")]
    return CliRunner().invoke(main, command)


# ownership ---------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_store_is_refused_and_kept(built: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "clips" / "holiday_2019").mkdir(parents=True)
    (photos / "clips" / "holiday_2019" / "beach.jpg").write_bytes(b"\xff\xd8 a photo")
    before = tree(tmp_path)
    result = stage(built, "faces", built / "manifest" / "manifest.csv", photos)
    assert result.exit_code == 1, result.output
    assert "not a mesti store" in result.output and "holds clips" in result.output
    assert tree(tmp_path) == before
    with pytest.raises(store.NotOwned, match="not a mesti store"):
        run_modalities(built / "faces.zarr", photos, ModalitiesConfig(), SERIAL)
    assert tree(tmp_path) == before


def test_a_store_of_another_kind_or_a_file_is_refused(built: Path, work: Path) -> None:
    shutil.copytree(built / "modalities.zarr", work / "modalities.zarr")
    (work / "a_file").write_text("x")
    before = tree(work)
    result = stage(built, "faces", built / "manifest" / "manifest.csv", work / "modalities.zarr")
    assert result.exit_code == 1 and "a modalities store, not a faces store" in result.output
    result = stage(built, "modalities", work / "faces.zarr", work / "faces.zarr")
    assert result.exit_code == 1 and "a faces store, not a modalities store" in result.output
    result = stage(built, "modalities", work / "modalities.zarr", work / "new.zarr")
    assert result.exit_code == 2 and "needs a faces store" in result.output
    with pytest.raises(store.NotOwned, match="not a folder"):
        run_faces(built / "manifest" / "manifest.csv", work / "a_file", FacesConfig(), SERIAL)
    result = stage(built, "faces", built / "manifest" / "manifest.csv", work / "a_file")
    assert result.exit_code == 2  # click: a file where a folder is expected
    assert tree(work) == before and not (work / "new.zarr").exists()


# empty input, pruning ---------------------------------------------------------------------


def test_an_empty_manifest_is_refused_and_deletes_nothing(built: Path, work: Path) -> None:
    empty = work / "empty.csv"
    empty.write_text((built / "manifest" / "manifest.csv").read_text().splitlines()[0] + "\n")
    before = tree(work)
    result = stage(built, "faces", empty, work / "faces.zarr")
    assert result.exit_code == 1 and "no clip" in result.output
    assert tree(work) == before
    # a faces store with no clip gives modalities nothing to do
    store.open_for_writing(work / "none.zarr", "faces", {"dataset": "casme2"})
    store.finalise(work / "none.zarr", [], {})
    before = tree(work)
    with pytest.raises(EmptyInput, match="lists no clip"):
        run_modalities(work / "none.zarr", work / "out.zarr", ModalitiesConfig(), SERIAL)
    assert tree(work) == before


def test_clips_that_left_the_manifest_are_kept_until_prune(built: Path, work: Path) -> None:
    records = read_manifest(built / "manifest" / "manifest.csv")
    gone = records[-1].clip_id
    write_manifest(records[:-1], work / "fewer.csv")
    group = work / "faces.zarr" / "clips" / gone
    kept = tree(group)
    metrics = run_faces(work / "fewer.csv", work / "faces.zarr", FacesConfig(), SERIAL)
    assert metrics["clips_reused"] == 3 and metrics["clips_unlisted"] == [gone]
    assert metrics["clips_pruned"] == []
    assert tree(group) == kept  # untouched on disk
    reopened = open_store(work / "faces.zarr")
    assert gone not in reopened.clip_ids and reopened.attrs["unlisted"] == [gone]
    assert verify_store(work / "faces.zarr") == []
    same_faces(work / "faces.zarr", built / "faces.zarr")
    # the same manifest again with --prune removes it, and says so
    result = CliRunner().invoke(main, [
        "faces", str(work / "fewer.csv"), str(work / "faces.zarr"), "--workers", "0",
        "--no-progress", "--params", str(built / "params.yaml"), "--prune",
        "--metrics", str(work / "metrics.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((work / "metrics.timing.json").read_text())["clips_pruned"] == [gone]
    assert "clips_pruned" not in json.loads((work / "metrics.json").read_text())
    assert not group.exists() and open_store(work / "faces.zarr").attrs["unlisted"] == []
    assert (work / "notes.txt").read_text() == "not the pipeline's"


def test_a_clip_without_its_arrays_is_never_listed(built: Path, work: Path) -> None:
    clip = open_store(work / "faces.zarr").clip_ids[0]
    shutil.rmtree(work / "faces.zarr" / "clips" / clip / "frames")  # status still "ok"
    assert not store.finished(work / "faces.zarr", clip, "faces")
    done = store.finalise(work / "faces.zarr", open_store(work / "faces.zarr").clip_ids, {})
    assert done["broken"] == [clip]
    assert clip not in open_store(work / "faces.zarr").clip_ids


# one writer ----------------------------------------------------------------------------------


def lock_of(path: Path, host: str, pid: int) -> None:
    (path / store.LOCK_FILE).write_text(json.dumps({"host": host, "pid": pid,
                                                    "started": time.time()}))


def test_a_held_lock_refuses_a_second_run_at_once(built: Path, work: Path) -> None:
    out = work / "faces.zarr"
    for host, pid in ((socket.gethostname(), os.getppid()), ("node042", 1)):
        lock_of(out, host, pid)  # a live process here; anything on another host
        before = tree(work)
        started = time.monotonic()
        result = stage(built, "faces", built / "manifest" / "manifest.csv", out)
        assert time.monotonic() - started < 10
        assert result.exit_code == 1 and "another run is writing this store" in result.output
        assert f"pid {pid} on host {host}" in result.output
        assert tree(work) == before


def test_a_stale_lock_of_a_killed_run_is_taken_over(built: Path, work: Path, capfd) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = work / "faces.zarr"
    lock_of(out, socket.gethostname(), dead.pid)
    metrics = run_faces(built / "manifest" / "manifest.csv", out, FacesConfig(), SERIAL)
    assert metrics["clips_reused"] == 4
    assert f"taking over the writer lock of pid {dead.pid}" in capfd.readouterr().err
    assert not (out / store.LOCK_FILE).exists()
    assert [p.name for p in out.iterdir() if "lock" in p.name] == []
    # a lock file left empty: a run that is just creating it, or one killed while doing so
    (out / store.LOCK_FILE).write_text("")
    with pytest.raises(store.StoreLocked, match="a run that is just starting"):
        run_faces(built / "manifest" / "manifest.csv", out, FacesConfig(), SERIAL)
    old = time.time() - store.ABANDONED_EMPTY_LOCK_S - 1
    os.utime(out / store.LOCK_FILE, (old, old))
    assert run_faces(built / "manifest" / "manifest.csv", out, FacesConfig(),
                     SERIAL)["clips_reused"] == 4
    assert "left empty by a run killed while creating it" in capfd.readouterr().err
    assert [p.name for p in out.iterdir() if "lock" in p.name] == []


def test_two_concurrent_runs_one_refused_store_equals_a_clean_run(built: Path,
                                                                  tmp_path: Path) -> None:
    records = read_manifest(built / "manifest" / "manifest.csv")
    write_manifest(records[:2], tmp_path / "other.csv")
    out = tmp_path / "faces.zarr"

    def start(manifest: Path) -> subprocess.Popen:
        """A `mesti faces` process, its imports done, that runs when a line reaches it."""
        args = ["faces", str(manifest), str(out), "--workers", "0", "--no-progress",
                "--params", str(built / "params.yaml")]
        code = ("import sys, mesti.pipeline.runner.run; from mesti.cli import main; "
                f"sys.stdin.readline(); main({args!r})")
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first, second = start(built / "manifest" / "manifest.csv"), start(tmp_path / "other.csv")
    first.stdin.write("go\n")
    first.stdin.flush()
    deadline = time.monotonic() + 120
    while not (out / store.LOCK_FILE).exists() and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    started = time.monotonic()
    _, err = second.communicate("go\n", timeout=120)
    assert time.monotonic() - started < 10  # refused at once, not after waiting
    assert first.poll() is None, f"the first run ended before the second started: {err}"
    assert second.returncode == 1 and "another run is writing this store" in err
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert open_store(out).clip_ids == open_store(built / "faces.zarr").clip_ids
    same_faces(built / "faces.zarr", out)
    assert not (out / store.LOCK_FILE).exists()


def test_sigkill_of_a_local_cluster_parent_then_rerun(built: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil", reason="psutil finds the orphaned Dask workers")
    out = tmp_path / "faces.zarr"
    parent = subprocess.Popen(
        [str(BIN / "mesti"), "faces", str(built / "manifest" / "manifest.csv"), str(out),
         "--workers", "1", "--no-progress", "--params", str(built / "params.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done: list[Path] = []
        while time.monotonic() < deadline and parent.poll() is None and not done:
            done = [p for p in out.glob("clips/*/zarr.json") if '"ok"' in p.read_text()]
            time.sleep(0.01)
        children = psutil.Process(parent.pid).children(recursive=True)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # the orphaned nanny and worker lose their scheduler and end
        _, alive = psutil.wait_procs(children, timeout=20)
    finally:
        if group_alive(parent.pid):  # never leave a process behind, whatever happened
            os.killpg(parent.pid, signal.SIGKILL)
    assert done, "the stage never finished a clip"
    assert not alive, f"orphaned workers still running: {alive}"
    assert (out / store.LOCK_FILE).exists()  # left by the killed run
    resumed = run_faces(built / "manifest" / "manifest.csv", out, FacesConfig(), SERIAL)
    assert resumed["clips_reused"] >= 1 and resumed["clips_failed"] == 0
    assert open_store(out).clip_ids == open_store(built / "faces.zarr").clip_ids
    same_faces(built / "faces.zarr", out)
    assert verify_store(out) == []


# upstream checks ------------------------------------------------------------------------------


def edit_attrs(path: Path, **changes) -> None:
    document = json.loads(path.read_text())
    document["attributes"].update(changes)
    path.write_text(json.dumps(document))
    mirror(path)


def test_a_hand_edited_faces_label_is_not_copied(built: Path, work: Path) -> None:
    faces = work / "faces.zarr"
    clips = open_store(faces).clip_ids
    edited, others = clips[0], clips[1:]
    attrs = open_store(faces).clip_attrs(edited)
    new_label = next(x for x in ("negative", "positive", "surprise") if x != attrs["label3"])
    edit_attrs(faces / "clips" / edited / "zarr.json", label3=new_label)
    before = tree(faces)
    result = stage(built, "modalities", faces, work / "modalities.zarr", "--failures",
                   work / "failures.csv")
    assert result.exit_code == 0, result.output  # one failure of four, under the bound
    assert f"{edited},modalities,upstream_key_mismatch," in (work / "failures.csv").read_text()
    out = open_store(work / "modalities.zarr")
    assert out.clip_ids == others
    same_modalities(built / "modalities.zarr", work / "modalities.zarr", others)
    assert tree(faces) == before
    verify = CliRunner().invoke(main, ["cache", "verify", str(faces)])
    assert verify.exit_code == 1 and f"clip {edited}: content_key" in verify.output


@pytest.mark.parametrize("workers", [0, 1])
def test_a_missing_faces_group_is_that_clips_failure(built: Path, work: Path,
                                                     workers: int) -> None:
    faces = work / "faces.zarr"
    clips = open_store(faces).clip_ids
    forget(faces / "clips" / clips[1] / "zarr.json")  # gone from the readers' copy too
    (faces / "clips" / clips[1] / "zarr.json").unlink()
    metrics = run_modalities(faces, work / "modalities.zarr", ModalitiesConfig(),
                             ClusterOptions(workers=workers, progress=False))
    assert metrics["clips_failed"] == 1 and metrics["failures"] == {"upstream_missing": 1}
    failure = open_store(work / "modalities.zarr").attrs["failures"][0]
    assert failure["clip_id"] == clips[1] and "group is missing" in failure["message"]
    others = [c for c in clips if c != clips[1]]
    assert open_store(work / "modalities.zarr").clip_ids == others
    same_modalities(built / "modalities.zarr", work / "modalities.zarr", others)


# training on a damaged store --------------------------------------------------------------------


def test_training_skips_or_stops_at_a_bad_clip(built: Path, work: Path, capsys) -> None:
    from mesti.train.data import BadClip, load_clips

    modalities = Path(shutil.copytree(built / "modalities.zarr", work / "modalities.zarr"))
    clips = open_store(modalities).clip_ids
    forget(modalities / "clips" / clips[0] / "zarr.json")
    (modalities / "clips" / clips[0] / "zarr.json").unlink()
    shard = max((p for p in (modalities / "clips" / clips[1] / "images").rglob("*")
                 if p.is_file() and p.name != "zarr.json"), key=lambda p: p.stat().st_size)
    data = bytearray(shard.read_bytes())
    for position in range(0, len(data) - 200, 256):  # every image's chunk, not the index
        data[position] ^= 0xFF
    shard.write_bytes(bytes(data))
    source = open_store(built / "modalities.zarr")
    labelled = [c for c in clips[2:] if source.clip_attrs(c)["label3"]]
    table = load_clips([str(modalities)], "mesti", 3)
    assert list(table.clip_ids) == labelled
    assert np.array_equal(table.images, source.images("mesti", labelled))
    assert len(table.skipped) == 2
    assert clips[0] in table.skipped[0] and clips[1] in table.skipped[1]
    err = capsys.readouterr().err
    assert f"clip {clips[0]}: unreadable" in err and f"clip {clips[1]}: unreadable" in err
    with pytest.raises(BadClip, match=f"clip {clips[0]}"):
        load_clips([str(modalities)], "mesti", 3, on_bad_clip="stop")


# invalid worker counts --------------------------------------------------------------------------


def test_invalid_worker_counts_are_refused(built: Path, tmp_path: Path) -> None:
    for value in ("-1", "two"):
        result = CliRunner().invoke(main, [
            "faces", str(built / "manifest" / "manifest.csv"), str(tmp_path / "f.zarr"),
            "--workers", value, "--no-progress"])
        assert result.exit_code == 2 and "--workers" in result.output
    with pytest.raises(ValueError, match="workers must be 0"):
        ClusterOptions(workers=-1)
    with pytest.raises(ValueError, match="jobs must be"):
        ClusterOptions(jobs=0)
    assert list(tmp_path.iterdir()) == []

