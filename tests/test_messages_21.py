"""Mistakes that used to end in a traceback or be accepted silently: each is now one line
naming the input and the problem, or a correct result (issue 21)."""

import csv
import errno
import io
import json
import re
import shutil
from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mesti.datasets_manifest import casme2, casme3, samm, videos
from mesti.datasets_manifest.manifest import ManifestError, read_manifest
from mesti.datasets_manifest.validate import ManifestConfig, validate
from mesti.pipeline.faces import align as faces
from mesti.pipeline.faces.decode import ClipError, iter_frames, jpeg_complete, read_input
from mesti.pipeline.runner import stages
from mesti.pipeline.stores.read import ReadLimits, StoreError, open_store
from mesti.train.models import fdp
from mesti.train.run import TrainConfig, run_training
from PIL import Image
from test_training import tiny_store
from test_user_errors import one_line_error

from mesti.cli import main

TINY = TrainConfig(input_size=16, epochs=1, batch_size=4, lr=1e-3, figure_clips=1)


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)



# --- mesti predict: weights of another network, another head, a truncated file ------------

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[list[str], Path]:
    tmp = tmp_path_factory.mktemp("predict")
    stores = [tiny_store(tmp / "a.zarr", "casme2", 3, 0)]
    run_training(stores, tmp / "run", TINY, progress=False)
    return stores, tmp / "run"


def test_predict_refuses_unusable_weights_by_name(run, tmp_path: Path) -> None:
    stores, original = run
    index = json.loads((original / "weights" / "folds.json").read_text())
    first = index[0]["file"]

    def damaged(name: str, write) -> Path:
        folder = tmp_path / name
        shutil.copytree(original, folder)
        write(folder / "weights" / first)
        return folder

    good = invoke("predict", *stores, original, "--out", tmp_path / "good.csv")
    assert good.exit_code == 0 and "identical to" in good.output, good.output

    fdp_weights = fdp.build("fdp", 3, preset="small", size=16)
    folder = damaged("fdp", lambda path: torch.save(fdp_weights.state_dict(), path))
    one_line_error(invoke("predict", *stores, folder), 1, str(folder / "weights" / first),
                   "not the weights of this run's network", "MEGANet")

    def four_classes(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        state["head.weight"] = torch.zeros(4, state["head.weight"].shape[1])
        state["head.bias"] = torch.zeros(4)
        torch.save(state, path)

    folder = damaged("four", four_classes)
    one_line_error(invoke("predict", *stores, folder), 1, str(folder / "weights" / first),
                   "a head of 4 classes", "this run has 3")

    def truncated(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:-200])

    folder = damaged("truncated", truncated)
    one_line_error(invoke("predict", *stores, folder), 1, str(folder / "weights" / first),
                   "not a readable weights file")


# --- MESTI_* read limits: every value's range is checked, by name ----------------------------

@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("MESTI_URL_TIMEOUT_S", "0", "above 0 and at most 3600"),  # used to wait forever
    ("MESTI_URL_TIMEOUT_S", "inf", "above 0 and at most 3600"),  # used to give a traceback
    ("MESTI_URL_TIMEOUT_S", "nan", "above 0 and at most 3600"),  # used to be accepted
    ("MESTI_URL_TIMEOUT_S", "-1", "above 0 and at most 3600"),
    ("MESTI_URL_RETRIES", "1000000000", "0 to 10"),
    ("MESTI_URL_RETRIES", "2.5", "0 to 10"),
    ("MESTI_URL_BACKOFF_S", "1e12", "0 to 60"),
    ("MESTI_URL_BACKOFF_S", "nan", "0 to 60"),
    ("MESTI_MAX_FRAMES", "0", "1 to"),
    ("MESTI_MAX_SIDE", "inf", "1 to"),
    ("MESTI_MAX_ARRAY_BYTES", "-5", "1 to"),
    ("MESTI_MAX_CHUNKS", "lots", "1 to"),
    ("MESTI_MAX_METADATA_BYTES", "1e400", "1 to"),
])
def test_read_limits_out_of_range_are_named(name: str, value: str, allowed: str,
                                             tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        ReadLimits.from_env({name: value})
    assert f"{name}={value!r}" in str(caught.value) and allowed in str(caught.value)
    store = tiny_store(tmp_path / "a.zarr", "casme2", 1, 0)
    one_line_error(invoke("cache", "info", store, env={name: value}), 1, name, repr(value),
                   allowed)


def test_read_limits_bound_the_total_back_off() -> None:
    with pytest.raises(StoreError, match="MESTI_URL_BACKOFF_S=50 with MESTI_URL_RETRIES=10 "
                                         r"would wait 51150 s .*at most 3600 s"):
        ReadLimits.from_env({"MESTI_URL_BACKOFF_S": "50", "MESTI_URL_RETRIES": "10"})
    limits = ReadLimits.from_env({"MESTI_URL_TIMEOUT_S": " 5 ", "MESTI_URL_RETRIES": "10",
                                  "MESTI_URL_BACKOFF_S": "0", "MESTI_MAX_FRAMES": "7"})
    assert (limits.url_timeout_s, limits.url_retries, limits.url_backoff_s,
            limits.max_frames) == (5.0, 10, 0.0, 7)


# --- JPEG truncation: judged by the decoder's walk to its end marker, not the last bytes -----

def _jpegs() -> dict[str, bytes]:
    """Baseline, progressive and restart-marker JPEGs, and one carrying an EXIF thumbnail
    (a complete JPEG with its own end marker inside APP1)."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8), (5, 5), 0)
    made = {name: cv2.imencode(".jpg", image, flags)[1].tobytes() for name, flags in (
        ("baseline", []), ("progressive", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("restarts", [cv2.IMWRITE_JPEG_RST_INTERVAL, 1]))}
    exif = b"Exif\0\0" + cv2.imencode(".jpg", image[::4, ::4])[1].tobytes()
    base = made["baseline"]
    made["thumbnail"] = base[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + \
        base[2:]
    return made


def _pillow_reads(data: bytes) -> bool:
    """The independent oracle: Pillow's decoder, which refuses a truncated file."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name", ["baseline", "progressive", "restarts", "thumbnail"])
def test_jpeg_completeness_agrees_with_a_decoder(name: str) -> None:
    data = _jpegs()[name]
    for tail in (b"\x00", b"\xff", b"padding\xff\xd8"):
        assert jpeg_complete(np.frombuffer(data + tail, np.uint8)) and _pillow_reads(data + tail)
    for cut in range(4, len(data) - 1, 11):
        cut_data = data[:cut]
        assert not jpeg_complete(np.frombuffer(cut_data, np.uint8)), cut
        assert not _pillow_reads(cut_data), cut


def test_a_byte_after_the_end_marker_keeps_the_clip(tmp_path: Path) -> None:
    data = _jpegs()["baseline"]
    for number in (1, 2, 3):
        (tmp_path / f"img{number}.jpg").write_bytes(data)
    (tmp_path / "img2.jpg").write_bytes(data + b"\x00")  # used to fail the clip
    frames = list(iter_frames("c", "images", tmp_path, ["img1.jpg", "img2.jpg", "img3.jpg"]))
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert len(frames) == 3 and all(np.array_equal(f, expected) for f in frames)
    (tmp_path / "img3.jpg").write_bytes(data[:len(data) // 2] + b"\x00")  # truly truncated
    with pytest.raises(ClipError, match=r"img3\.jpg is a truncated JPEG") as caught:
        list(iter_frames("c", "images", tmp_path, ["img1.jpg", "img2.jpg", "img3.jpg"]))
    assert caught.value.code == "decode_error"


# --- a read-only output folder, a full disk: one line naming the path ------------------------

@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a folder without write permission, or, for
    root (whom permissions do not stop), the kernel's /sys, which refuses every new entry."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    assert Path("/sys/kernel").is_dir(), "running as root without /sys: no read-only folder"
    return Path("/sys")


def test_a_read_only_output_folder_is_one_line(small_stores: Path, read_only: Path,
                                               tmp_path: Path) -> None:
    tiny = tiny_store(tmp_path / "tiny.zarr", "casme2", 3, 0)
    manifest = small_stores / "manifest" / "manifest.csv"
    clip_id = open_store(small_stores / "modalities.zarr").clip_ids[0]
    params = tmp_path / "empty.yaml"
    params.write_text("")
    cases = {
        "sample": ("sample", read_only / "m21-sample", "--params", params),
        "manifest": ("manifest", "casme2", small_stores / "raw", read_only / "m21-manifest",
                     "--params", params),
        "faces": ("faces", manifest, read_only / "m21-faces.zarr", "--workers", "0",
                  "--no-progress", "--params", params),
        "modalities": ("modalities", small_stores / "faces.zarr", read_only / "m21-mod.zarr",
                       "--workers", "0", "--no-progress", "--params", params),
        "preprocess": ("preprocess", manifest, read_only / "m21-f.zarr",
                       read_only / "m21-m.zarr", "--workers", "0", "--no-progress",
                       "--params", params),
        "sequences": ("sequences", small_stores / "faces.zarr", read_only / "m21-seq.zarr",
                      "--workers", "0", "--no-progress", "--params", params),
        "train": ("train", tiny, read_only / "m21-run", "--params", params, "--no-progress"),
        "cache export": ("cache", "export", small_stores / "modalities.zarr",
                         read_only / "m21.zip"),
        "show": ("show", small_stores / "modalities.zarr", clip_id, read_only / "m21.png"),
    }
    for name, args in cases.items():
        result = invoke(*args)
        line = one_line_error(result, 1, str(read_only / "m21"))
        assert "permission denied" in line or "read-only file system" in line, (name, line)
    assert not [p for p in read_only.iterdir() if p.name.startswith("m21")]


@pytest.fixture
def work_folders(small_stores: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A current folder, an output folder beside it, and the small stores."""
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "params.yaml").write_text("")  # every knob at its default, silently
    (tmp_path / "out").mkdir()
    return tmp_path / "here", tmp_path / "out", small_stores


def test_a_full_disk_names_the_store_not_the_current_folder(work_folders, monkeypatch) -> None:
    from mesti.pipeline.stores import write as store_module
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write: no file name

    here, out, small_stores = work_folders
    monkeypatch.setattr(store_module, "write_clip", full)
    monkeypatch.chdir(here)
    result = invoke("modalities", small_stores / "faces.zarr", out / "m.zarr", "--workers",
                    "0", "--no-progress")
    line = one_line_error(result, 1, f"{out / 'm.zarr'}: no space left on device",
                          "MB free on that file system")
    assert str(here) not in line


# --- a writer lock path that is a folder ----------------------------------------------------

def test_a_lock_path_that_is_a_folder_is_refused_by_name(work_folders, capfd) -> None:
    from mesti.pipeline.stores.write import LOCK_FILE

    here, out, small_stores = work_folders
    target = out / "m.zarr"
    shutil.copytree(small_stores / "modalities.zarr", target)
    (target / LOCK_FILE).mkdir()
    (target / LOCK_FILE / "note.txt").write_text("mine")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    result = invoke("modalities", small_stores / "faces.zarr", target, "--workers", "0",
                    "--no-progress", "--params", here / "params.yaml")
    one_line_error(result, 1, f"{target / LOCK_FILE}: the store's writer lock path is a "
                              "directory", "move it away")
    assert "taking over" not in capfd.readouterr().err
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert (target / LOCK_FILE / "note.txt").read_text() == "mine"


# --- a manifest whose labels were edited: checked against the dataset's mapping -------------

def _edited(small_stores: Path, tmp_path: Path, name: str, **cells: str) -> Path:
    """The small manifest with its first row's ``cells`` replaced, as ``name``."""
    with (small_stores / "manifest" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0].update(cells)
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_edited_labels_are_refused_naming_line_column_and_value(small_stores: Path,
                                                                tmp_path: Path) -> None:
    original = read_manifest(small_stores / "manifest" / "manifest.csv")
    first = original[0]
    assert first.dataset == "casme2" and first.label3 == casme2.LABELS.three[first.emotion]
    other = next(e for e in sorted(casme2.LABELS.three)
                 if casme2.LABELS.three[e] != first.label3)
    cases = {
        "banana.csv": ({"label3": "banana"}, "column label3: 'banana' disagrees"),
        "disagree.csv": ({"emotion": other}, f"column label3: {first.label3!r} disagrees "
                                             f"with the emotion {other!r}"),
        "label5.csv": ({"label5": "fear"}, "column label5: 'fear' disagrees"),
        "emotion.csv": ({"emotion": "banana", "label3": "", "label5": ""},
                        "column emotion: 'banana' is not a casme2 emotion"),
        "dataset.csv": ({"dataset": "mydata"}, "column dataset: 'mydata' is not one of"),
    }
    for name, (cells, words) in cases.items():
        path = _edited(small_stores, tmp_path, name, **cells)
        with pytest.raises(ManifestError, match=re.escape(f"{path}, line 2, {words}")):
            read_manifest(path)
        out = tmp_path / f"{name}.zarr"
        one_line_error(invoke("faces", path, out, "--workers", "0", "--no-progress"), 1,
                       f"{path}, line 2, {words}")
        assert not out.exists()
    consistent = _edited(small_stores, tmp_path, "relabelled.csv", emotion=other,
                         label3=casme2.LABELS.three[other],
                         label5=casme2.LABELS.five.get(other, ""))
    assert read_manifest(consistent)[0].label3 == casme2.LABELS.three[other]


# --- a malformed subject cell excludes its row, by name, in every recipe ---------------------

def _invalid_subjects(problems) -> dict[str, str]:
    assert all(p.action == "excluded" for p in problems if p.code == "subject_invalid")
    return {p.clip_id: p.detail for p in problems if p.code == "subject_invalid"}


def test_casme3_malformed_subject_excludes_only_its_row(tmp_path: Path) -> None:
    root = tmp_path / "casme3"
    fakes.casme3_clip(root, 1, "a", 1, 60)
    fakes.casme3_clip(root, 2, "b", 1, 60)
    fakes.xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", fakes.CASME3_HEADER, [
        ["spNO.1", "a", 10, 20, 30, "4", "1", "disgust"],      # sheet row 2
        ["spNO.x", "a", 40, 45, 50, "4", "1", "disgust"],      # 3: no number
        [None, "b", 10, 20, 30, "12", "2", "happy"],            # 4: blank
        ["spNO.1.5", "b", 10, 20, 30, "12", "2", "happy"],      # 5: not a whole number
        [2.0, "b", 10, 20, 30, "1+2", "3", "surprise"],         # 6: the number 2.0
    ])
    records, problems = validate(casme3.prepare(root), {}, ManifestConfig())
    assert [r.clip_id for r in records] == ["spNO.1_a", "spNO.2_b"]
    invalid = _invalid_subjects(problems)
    assert set(invalid) == {"row3", "row4", "row5"}
    assert invalid["row3"] == "sheet row 3: subject 'spNO.x' is not a subject number " \
                              "(filename 'a')"
    assert invalid["row4"].startswith("sheet row 4: subject '' is not a subject number")
    assert casme3._subject("spno1") == casme3._subject(1) == casme3._subject("01") == "spNO.1"


def test_samm_malformed_subject_excludes_only_its_row(tmp_path: Path) -> None:
    root = tmp_path / "SAMM_data"
    fakes.samm_clip(root, 6, "006_1_2", 5562, 5580)
    fakes.samm_clip(root, 7, "007_5_1", 10, 30)
    rows = [
        [6, "006_1_2", "1", 5562, 5570, 5580, 19, "Micro", "R12", "Happiness", "2", ""],
        ["six", "006_1_3", "1", 5562, 5570, 5580, 19, "Micro", "R12", "Happiness", "2", ""],
        [None, "006_1_4", "1", 5562, 5570, 5580, 19, "Micro", "R12", "Happiness", "2", ""],
        ["7.0", "007_5_1", "5", 10, 20, 30, 21, "Micro", "1+2", "Other", "7", ""],
    ]
    fakes.xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", fakes.SAMM_HEADER, rows,
               preamble=fakes.SAMM_PREAMBLE)
    scan = samm.prepare(root)
    records, problems = validate(scan, {}, ManifestConfig())
    assert [(r.clip_id, r.subject) for r in records] == [("006_1_2", "006"), ("007_5_1", "007")]
    invalid = _invalid_subjects(problems)
    assert len(invalid) == 2
    assert any(d.endswith("subject 'six' is not a subject number (filename '006_1_3')")
               for d in invalid.values())
    assert all(d.startswith("sheet row ") for d in invalid.values())


def test_videos_malformed_subject_excludes_only_its_row(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    for name in ("take1", "take2", "take3"):
        writer = cv2.VideoWriter(str(root / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                 25.0, (32, 24))
        for i in range(10):
            writer.write(np.full((24, 32, 3), i * 20, np.uint8))
        writer.release()
    (root / "annotations.csv").write_text(
        "video,subject,onset,apex,offset,emotion\n"
        "take1.avi,p01,1,4,8,happiness\n"
        "take2.avi,../p02,1,4,8,surprise\n"
        "take3.avi,p03,1,4,8,surprise\n")
    records, problems = validate(videos.prepare(root), {}, ManifestConfig())
    assert [(r.clip_id, r.subject) for r in records] == [("take1", "p01"), ("take3", "p03")]
    assert _invalid_subjects(problems) == {
        "row3": "sheet row 3: subject '../p02' is not a subject name (one line of text without "
                "a path separator) (filename 'take2.avi')"}


# --- a false face from an early detector attempt: the next attempts are tried ---------------

def _face(x: float, y: float, side: float, score: float) -> faces.Face:
    eyes = [(x + side * 0.3, y + side * 0.4), (x + side * 0.7, y + side * 0.4)]
    rest = [(x + side / 2, y + side * 0.6)] * 4
    return faces.Face((x, y, side, side), score, np.array(eyes + rest, float))


def _points(face: faces.Face) -> np.ndarray:
    """Face-mesh landmarks whose eye corners sit around the detector's eye keypoints."""
    points = np.zeros((468, 2))
    (lx, ly), (rx, ry) = face.keypoints[:2]
    points[[33, 133]] = [(lx - 5, ly), (lx + 5, ly)]
    points[[362, 263]] = [(rx - 5, ry), (rx + 5, ry)]
    return points


def _fake_detectors(monkeypatch, by_attempt: dict[str, list], meshed: set) -> list[str]:
    """Detectors that find ``by_attempt``'s faces and a mesh that finds landmarks only on the
    faces whose box is in ``meshed``; the attempts run are recorded."""
    calls = []

    def attempt_faces(image, models, attempt, upscale=2.0):
        calls.append(attempt)
        return list(by_attempt.get(attempt, []))

    def landmarks(image, box, models, roll=0.0, turns=False):
        found = [f for faces_ in by_attempt.values() for f in faces_ if f.box == box]
        return _points(found[0]) if box in meshed else None

    monkeypatch.setattr(stages, "_models", lambda confidence: object())
    monkeypatch.setattr(faces, "attempt_faces", attempt_faces)
    monkeypatch.setattr(faces, "landmarks", landmarks)
    return calls


def _clip(tmp_path: Path):
    rng = np.random.default_rng(0)
    names = []
    for number in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"img{number}.png"),
                    rng.integers(0, 256, (240, 320, 3)).astype(np.uint8))
        names.append(f"img{number}.png")
    record = {"clip_id": "c", "frames": names, "frame_numbers": [1, 2, 3], "apex": 2}
    return record, read_input("c", "images", tmp_path, names)


def test_a_false_face_the_mesh_rejects_sends_detection_to_the_next_attempt(
        tmp_path: Path, monkeypatch) -> None:
    false, real = _face(0, 0, 200, 0.9), _face(150, 90, 40, 0.8)
    calls = _fake_detectors(monkeypatch, {"short": [false], "full": [real],
                                          "upscaled": [real]}, {real.box})
    record, source = _clip(tmp_path)
    frames, found = stages._align("c", record, source, faces.FacesConfig(size=64))
    assert found["attempt"] == "full" and found["box"] == real.box
    assert calls[:2] == ["short", "full"] and "upscaled" not in calls  # no more than needed
    assert frames.shape == (3, 64, 64, 3)
    # the face it follows is the real one: its eyes land where the alignment puts them
    eyes = faces.transform_points(_points(real)[[33, 133, 362, 263]], found["matrix"])
    assert np.allclose(eyes[:, 1], 0.38 * 64) and np.isclose(eyes[:, 0].mean(), 32)


def test_every_attempt_rejected_names_them_all(tmp_path: Path, monkeypatch) -> None:
    false = _face(0, 0, 200, 0.9)
    _fake_detectors(monkeypatch, {"short": [false], "upscaled": [_face(5, 5, 150, 0.7)]},
                    set())
    record, source = _clip(tmp_path)
    with pytest.raises(ClipError, match=r"attempts with a face: short \(.*\), upscaled") as caught:
        stages._align("c", record, source, faces.FacesConfig(size=64))
    assert caught.value.code == "no_face"
    _fake_detectors(monkeypatch, {}, set())
    with pytest.raises(ClipError, match="no face found on the onset frame") as caught:
        stages._align("c", record, source, faces.FacesConfig(size=64))
    assert caught.value.code == "no_face"


def test_predict_refuses_a_damaged_folds_index_by_name(run, tmp_path: Path) -> None:
    stores, original = run
    for name, text in (("cut", '[{"fold": "casme2/s0", "file": "fold_'),
                       ("escape", '[{"fold": "a", "file": "../../x.pt", "test": []}]'),
                       ("empty", "[]")):
        folder = tmp_path / name
        shutil.copytree(original, folder)
        (folder / "weights" / "folds.json").write_text(text)
        one_line_error(invoke("predict", *stores, folder), 1,
                       f"{folder / 'weights' / 'folds.json'}: not a folds index"
                       if name != "escape" else "entry 0 is not a fold")


def test_a_read_only_file_system_is_named_as_such(tmp_path: Path) -> None:
    from mesti.cli import user_error

    error = user_error(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "s.zarr")))
    assert error is not None and error.exit_code == 1
    assert error.message == f"{tmp_path / 's.zarr'}: read-only file system; write the " \
                            "outputs elsewhere"
    assert user_error(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug: traceback
