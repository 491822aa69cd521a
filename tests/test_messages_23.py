"""Issue 23's messages: each mistake a new user made gives one line naming the input and the
problem (no traceback), Ctrl-C in a stage says what state the stores are in, and the reader's
smaller expectations (full class lists, an xarray image coordinate, faces crops beside a
received store) hold."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import fakes
import loopback
import numpy as np
import pytest
from click.testing import CliRunner
from mesti.datasets_manifest.manifest import build_manifest
from mesti.pipeline.figures import show_clip
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_modalities
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.read import StoreError, open_store
from mesti.train import run as train_run
from mesti.train.compare import UNFINISHED
from mesti.train.run import TrainConfig, run_training
from test_training import tiny_store
from test_user_errors import SHEET, digest, invoke, one_line_error

from mesti.cli import main

# CASME II's five classes and seven emotions as its owners publish them (the recipe's map)
CASME2_FIVE = ["disgust", "happiness", "others", "repression", "surprise"]
CASME2_EMOTIONS = ["disgust", "fear", "happiness", "others", "repression", "sadness",
                   "surprise"]
TINY = TrainConfig(input_size=16, epochs=1, batch_size=4, lr=1e-3, figure_clips=0,
                   save_weights=False)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A tiny CASME II dataset (``raw``), its manifest and an empty params file."""
    raw = tmp_path / "raw"
    for subject, name in ((1, "EP01_01f"), (2, "EP02_01f")):
        fakes.casme2_clip(raw, subject, name, 1, 10)
    fakes.xlsx(raw / SHEET, fakes.CASME2_HEADER, [
        [1, "EP01_01f", None, 1, 5, 10, None, "12", "happiness"],
        [2, "EP02_01f", None, 1, 5, 10, None, "4", "disgust"]])
    build_manifest("casme2", raw, tmp_path / "manifest")
    (tmp_path / "empty.yaml").write_text("")
    return tmp_path


def params(folder: Path, text: str, name: str = "knobs.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- tracebacks that are now one line ------------------------------------------------------

def test_malformed_overrides_yaml_is_one_line(work: Path) -> None:
    bad = params(work, "sub01_EP01_01f: {apex: 3, reason: [unclosed\n", "fixes.yaml")
    before = digest(work)
    result = invoke("manifest", "casme2", work / "raw", work / "out", "--overrides", bad,
                    "--params", work / "empty.yaml")
    one_line_error(result, 1, f"{bad}: not valid YAML (line ")
    assert digest(work) == before


def test_overrides_say_how_many_fixes_matched(work: Path) -> None:
    samm = params(work, "006_1_2:\n  apex: 3\n  reason: SAMM's sheet\n", "samm.yaml")
    result = CliRunner().invoke(main, ["manifest", "casme2", str(work / "raw"),
                                       str(work / "out"), "--overrides", str(samm),
                                       "--params", str(work / "empty.yaml")])
    assert result.exit_code == 0, result.output
    assert f"warning: {samm}: none of its 1 fixes names a casme2 clip" in result.stderr
    ours = params(work, "sub01_EP01_01f:\n  apex: 4\n  reason: read by hand\n"
                        "006_1_2:\n  apex: 3\n  reason: SAMM's sheet\n", "mixed.yaml")
    result = CliRunner().invoke(main, ["manifest", "casme2", str(work / "raw"),
                                       str(work / "out2"), "--overrides", str(ours),
                                       "--params", str(work / "empty.yaml")])
    assert result.exit_code == 0, result.output
    assert f"{ours}: 1 of 2 fixes matched a casme2 clip; 1 name no clip" in result.stderr
    assert "warning" not in result.stderr


@pytest.fixture(scope="module")
def one_dataset(tmp_path_factory) -> str:
    return tiny_store(tmp_path_factory.mktemp("m23") / "a.zarr", "casme2", 2, 0)


@pytest.mark.parametrize("knobs, words", [
    ("train:\n  protocol: lodo\n",
     ["fold lodo:casme2 has no training clip", "lodo needs stores of two or more datasets",
      "['casme2']"]),
    ("train:\n  protocol: cross\n  train_on: casme2\n  test_on: smic\n",
     ["fold casme2->smic: no clip of smic in the stores", "['casme2']"]),
    ("train:\n  protocol: cross\n",
     ["protocol cross needs train.train_on and train.test_on"]),
])
def test_protocols_the_stores_cannot_hold(one_dataset: str, tmp_path: Path, knobs: str,
                                          words: list[str]) -> None:
    result = invoke("train", one_dataset, tmp_path / "run", "--no-progress",
                    "--params", params(tmp_path, knobs))
    one_line_error(result, 2, *words)


class NoRanges(loopback.RangeHandler):
    """A server that refuses range requests with 403 (a CDN rule, a signed-URL policy)."""

    def send_head(self):
        if self.headers.get("Range"):
            self.send_error(403, "Forbidden")
            return None
        return super().send_head()


def test_a_server_refusing_ranges_and_a_missing_zip_give_the_status(small_stores: Path) -> None:
    with loopback.serving(small_stores, NoRanges) as url:
        result = invoke("cache", "info", f"{url}/modalities.zarr")
        one_line_error(result, 1, "the server answered HTTP 403 Forbidden to a range request",
                       f"({url}/modalities.zarr/zarr.json)")
        assert "mesti_store" not in result.output  # never the document itself
    with loopback.serving(small_stores) as url:
        one_line_error(invoke("cache", "info", f"{url}/export/absent.zip"), 1,
                       f"{url}/export/absent.zip:", "HTTP 404")


def _preprocess(root: Path) -> subprocess.Popen:
    # As from a terminal, whatever started the tests: a shell's background job (as CI may
    # be) starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    command = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
               "signal.default_int_handler); from mesti.cli import main; main()", "preprocess",
               str(root / "manifest" / "manifest.csv"), str(root / "faces.zarr"),
               str(root / "modalities.zarr"), "--workers", "2", "--no-progress",
               "--params", str(root / "empty.yaml")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=root)


def test_ctrl_c_with_workers_says_the_stores_are_incomplete(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group (the parent and its Dask workers), as a
    terminal sends it: one line, exit 130, no worker traceback."""
    fakes.sample_dataset(tmp_path, seed=5, subjects=4, min_clips=2, max_clips=2,
                         min_frames=30, max_frames=40)
    (tmp_path / "empty.yaml").write_text("")
    process = _preprocess(tmp_path)
    clips = tmp_path / "faces.zarr" / "clips"
    deadline = time.monotonic() + 300
    while not list(clips.glob("*/zarr.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == [
        f"interrupted; the stores are incomplete ({tmp_path / 'faces.zarr'}, "
        f"{tmp_path / 'modalities.zarr'}); a re-run of the same command resumes"], err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    for store in ("faces.zarr", "modalities.zarr"):
        with pytest.raises(StoreError, match="store is incomplete"):
            open_store(tmp_path / store)


# --- poor messages made good ----------------------------------------------------------------

def test_a_knob_outside_its_choices_names_value_and_choices(work: Path) -> None:
    bad = params(work, "train:\n  protocol: loocv\n  batch_size: 0\n")
    result = invoke("train", work / "nostore", work / "run", "--params", bad)
    one_line_error(result, 2, "protocol is 'loocv'; it must be one of", "batch_size >= 1 must "
                   "hold (batch_size is 0)")
    for choice in ("loso", "lodo", "holdout", "cross"):
        assert choice in result.output
    assert "DVC" not in result.output  # not params.yaml: no word about dvc exp run -S
    (work / "dvc").mkdir()
    dvc_params = params(work / "dvc", "faces:\n  size: 8\n", "params.yaml")
    result = invoke("faces", work / "manifest" / "manifest.csv", work / "new.zarr",
                    "--params", dvc_params)
    one_line_error(result, 2, "size >= 32 must hold (size is 8)", "params.yaml holds this "
                   "value; after a failed `dvc exp run -S`, DVC leaves the -S value there")


def test_unknown_commands_suggest_the_nested_one() -> None:
    result = invoke("verify", "x.zarr")
    assert result.exit_code == 2
    assert "No such command 'verify'. Did you mean `main cache verify`?" in result.output
    result = invoke("trian", "x")
    assert result.exit_code == 2 and "Did you mean `main train`?" in result.output


def test_stores_of_another_kind_say_what_they_are(small_stores: Path, tmp_path: Path) -> None:
    faces = small_stores / "faces.zarr"
    clip = open_store(faces).clip_ids[0]
    one_line_error(invoke("show", faces, clip, tmp_path / "f.png"), 1,
                   f"{faces}: is a faces store (it holds aligned face frames); mesti show draws "
                   "a clip of a modality store")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.json"):
        (run / name).write_text("{}")
    one_line_error(invoke("predict", faces, run), 2,
                   f"{faces}: is a faces store; mesti predict needs a modalities store")
    with pytest.raises(StoreError, match="a modalities store; frames\\(\\) reads a faces store "
                                         "\\(this one is read with image"):
        open_store(small_stores / "modalities.zarr").frames(clip)
    assert not list(tmp_path.glob("*.png"))


def test_folders_that_are_not_finished_runs(one_dataset: str, tmp_path: Path,
                                            monkeypatch) -> None:
    done = tmp_path / "done"
    run_training([one_dataset], done, TINY, progress=False)
    assert not (done / UNFINISHED).exists()
    assert invoke("compare", done).exit_code == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mesti.train.folds.fit_fold", interrupted)  # where folds train
    with pytest.raises(KeyboardInterrupt):
        run_training([one_dataset], done, TINY, progress=False)  # over the finished run
    assert (done / UNFINISHED).is_file() and (done / "config.json").is_file()
    for command in (("compare", done), ("predict", one_dataset, done)):
        one_line_error(invoke(*command), 2, f"{done}: not a finished run: mesti train was "
                       "interrupted there")
    one_line_error(invoke("compare", tmp_path), 2, f"{tmp_path}: not a finished run of mesti "
                   "train (no config.json or metrics.json)")


def test_videos_not_read_are_named(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    writer = cv2.VideoWriter(str(root / "a.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                             (64, 48))
    for _ in range(5):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    (root / "p1").mkdir()
    (root / "p1" / "smile.gif").write_bytes(b"GIF89a" + bytes(20))
    build_manifest("videos", root, tmp_path / "out")
    problems = list(csv.DictReader((tmp_path / "out" / "problems.csv").open()))
    assert [(p["clip_id"], p["code"], p["action"]) for p in problems] == [
        ("p1-smile", "not_a_video", "ignored")]
    assert "p1/smile.gif: .gif is not read" in (tmp_path / "out" / "report.md").read_text()
    (root / "a.avi").unlink()
    one_line_error(invoke("manifest", "videos", root, tmp_path / "out2"), 1,
                   "no video files", "1 file(s) not read: p1/smile.gif: .gif is not read")


# --- smaller expectations -------------------------------------------------------------------

def test_dataset_classes_are_the_protocols_not_those_present(small_stores: Path) -> None:
    import mesti

    location = small_stores / "export" / "modalities.zip"
    index = open_store(location).index
    for field, full in (("label5", CASME2_FIVE), ("emotion", CASME2_EMOTIONS)):
        data = mesti.MestiDataset(location, labels=field)
        present = sorted(set(index[field].dropna()) - {""})
        assert len(present) < len(full)  # the sample lacks some: the old list was shorter
        assert data.classes == full
        assert [full[t] for t in data.targets] == list(data.index[field])
    chosen = mesti.MestiDataset(location, labels="label5", classes=CASME2_FIVE[::-1])
    assert [CASME2_FIVE[::-1][t] for t in chosen.targets] == list(chosen.index["label5"])


def test_xarray_view_has_an_image_coordinate(small_stores: Path) -> None:
    pytest.importorskip("xarray", reason="xarray is in the test extra")
    store = open_store(small_stores / "export" / "modalities.zip")
    clip = store.clip_ids[0]
    view = store.xarray(clip)
    assert list(view["image"].values) == store.names
    for name in store.names:
        assert np.array_equal(view.images.sel(image=name).values, store.image(clip, name))
    assert view.attrs["clip_id"] == clip


def test_show_finds_the_faces_store_beside_a_received_zip(small_stores: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    """The modality store records its faces store as given (relative); a lab that receives
    both as zips in one folder gets the crops, and is told where it looked otherwise."""
    monkeypatch.chdir(small_stores)
    serial = ClusterOptions(workers=0, progress=False)
    run_modalities(Path("faces.zarr"), tmp_path / "m.zarr", ModalitiesConfig(), serial)
    received = tmp_path / "received"
    received.mkdir()
    export_store(tmp_path / "m.zarr", received / "modalities.zip")
    export_store(small_stores / "faces.zarr", received / "faces.zip")
    monkeypatch.chdir(tmp_path)  # no faces.zarr here: the recorded path leads nowhere
    pooled = received / "modalities.zip"
    clip = open_store(pooled).clip_ids[0]
    written, note = show_clip(pooled, clip, tmp_path / "with.png")
    assert note is None and written.is_file()
    (received / "faces.zip").unlink()
    _, note = show_clip(pooled, clip, tmp_path / "without.png")
    assert f"tried faces.zarr, {received / 'faces.zarr'}, {received / 'faces.zip'}" in note
    shutil.rmtree(tmp_path / "m.zarr")



def test_ctrl_c_in_train_names_the_unfinished_run(one_dataset: str, tmp_path: Path,
                                                  monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mesti.train.folds.fit_fold", interrupted)  # where folds train
    knobs = params(tmp_path, "train:\n  input_size: 16\n  epochs: 1\n")
    result = CliRunner().invoke(main, ["train", one_dataset, str(tmp_path / "run"),
                                       "--no-progress", "--params", str(knobs)])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == [
        f"interrupted; {tmp_path / 'run'} is not a finished run (it holds UNFINISHED); "
        "train again to finish it"]
    assert (tmp_path / "run" / UNFINISHED).is_file()


def test_dataset_lodo_folds_name_the_dataset(one_dataset: str) -> None:
    from mesti.train.protocols import ProtocolError

    import mesti

    with pytest.raises(ProtocolError, match="fold lodo:casme2 has no training clip"):
        mesti.MestiDataset(one_dataset, protocol="lodo")


def test_ctrl_c_without_workers_names_the_store(work: Path, monkeypatch) -> None:
    from mesti.pipeline.runner import run as run_module
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "run_faces", interrupted)
    result = CliRunner().invoke(main, ["faces", str(work / "manifest" / "manifest.csv"),
                                       str(work / "f.zarr"), "--workers", "0",
                                       "--no-progress", "--params", str(work / "empty.yaml")])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == [
        f"interrupted; the stores are incomplete ({work / 'f.zarr'}); a re-run of the same "
        "command resumes"]


def test_a_several_seed_run_is_marked_until_it_ends(one_dataset: str, tmp_path: Path,
                                                   monkeypatch) -> None:
    seeds = TrainConfig(**{**TINY.__dict__, "seeds": (0, 1)})
    run_training([one_dataset], tmp_path / "done", seeds, progress=False)
    assert not list((tmp_path / "done").rglob(UNFINISHED))
    real = train_run._train_once

    def second_seed_interrupted(stores, out, config, *args):
        if config.seed == 1:
            raise KeyboardInterrupt
        return real(stores, out, config, *args)

    monkeypatch.setattr(train_run, "_train_once", second_seed_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training([one_dataset], tmp_path / "cut", seeds, progress=False)
    assert (tmp_path / "cut" / UNFINISHED).is_file()
    assert not (tmp_path / "cut" / "seed_0" / UNFINISHED).exists()
    one_line_error(invoke("compare", tmp_path / "cut"), 2, "not a finished run: mesti train "
                   "was interrupted there")
