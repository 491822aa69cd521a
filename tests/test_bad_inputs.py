"""Bad input, one case per clip beside good clips: each gets its named error, and the good
clips come out exactly as in a clean run."""

import shutil
from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
from mesti.datasets_manifest import videos
from mesti.datasets_manifest.manifest import build_manifest, read_manifest, write_manifest
from mesti.datasets_manifest.sheets import SheetError
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces
from mesti.pipeline.sample.generator import IMAGE_DIR, SampleConfig, generate_sample
from mesti.pipeline.stores.read import open_store

SERIAL = ClusterOptions(workers=0, progress=False)
N = 12  # frames per clip: one lost frame stays under max_missing_fraction


def _frames(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob("img*.jpg"),
                                               key=lambda p: int(p.stem[3:]))]


def _write(folder: Path, images: list[np.ndarray], start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"img{start + i}.jpg"), image)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str]]:
    """Two good clips (sub01) and one bad clip per case (sub02...), with their sheet."""
    tmp = tmp_path_factory.mktemp("bad")
    truth = generate_sample(tmp / "gen", SampleConfig(seed=2, subjects=1, min_clips=2,
                                                      max_clips=2, min_frames=N, max_frames=N))
    root = tmp / "raw"
    images = root / IMAGE_DIR
    rows, good = [], []
    for clip in truth:
        folder = images / "sub01" / clip.filename
        shutil.copytree(tmp / "gen" / IMAGE_DIR / "sub01" / clip.filename, folder)
        for path in folder.iterdir():  # renumber from 1 for simple windows
            path.rename(folder / f"img{int(path.stem[3:]) - clip.onset + 1}.jpg")
        rows.append([1, clip.filename, None, 1, 3, N, None, "12", clip.emotion])
        good.append(f"sub01_{clip.filename}")
    base = _frames(images / "sub01" / truth[0].filename)

    cases = {
        "truncated": lambda d: (_write(d, base), (d / "img3.jpg").write_bytes(
            (d / "img3.jpg").read_bytes()[:4000])),
        "zerobyte": lambda d: (_write(d, base), (d / "img4.jpg").write_bytes(b"")),
        "missing": lambda d: (_write(d, base), (d / "img4.jpg").unlink()),
        "notimage": lambda d: (_write(d, base), (d / "img2.jpg").write_text("not a frame")),
        "tiny": lambda d: _write(d, [cv2.resize(f, (16, 16)) for f in base]),
        "oddwidth": lambda d: _write(d, [cv2.resize(f, (641, 481)) for f in base]),
        "huge": lambda d: _write(d, [cv2.resize(f, (4096, 3072)) for f in base]),
        "grey": lambda d: _write(d, [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in base]),
        "noface": lambda d: _write(d, [np.full_like(f, 120) for f in base]),
        "twofaces": lambda d: _write(d, [np.hstack([f, f]) for f in base]),
    }
    for subject, (name, make) in enumerate(cases.items(), start=2):
        make(images / f"sub{subject:02d}" / name)
        rows.append([subject, name, None, 1, 3, N, None, "4", "disgust"])
    rows.append([30, "../../../etc", None, 1, 3, N, None, "4", "disgust"])  # escapes the root
    fakes.xlsx(root / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, rows)
    return root, good


@pytest.fixture(scope="module")
def results(dataset, tmp_path_factory):
    root, good = dataset
    tmp = tmp_path_factory.mktemp("bad-out")
    counts = build_manifest("casme2", root, tmp / "manifest")
    problems = (tmp / "manifest" / "problems.csv").read_text()
    records = read_manifest(tmp / "manifest" / "manifest.csv")
    # a hand-edited manifest row whose source leaves the dataset folder
    escape = records[0].__class__(**{**records[0].__dict__, "clip_id": "sub99_escape",
                                     "source": "../../outside"})
    unsafe = records[0].__class__(**{**records[0].__dict__, "clip_id": "../escaped"})
    write_manifest([*records, escape, unsafe], tmp / "manifest" / "manifest.csv")
    metrics = run_faces(tmp / "manifest" / "manifest.csv", tmp / "faces.zarr", FacesConfig(),
                        SERIAL)
    clean = tmp / "clean"
    clean.mkdir()
    write_manifest([r for r in records if r.clip_id in good], clean / "manifest.csv")
    run_faces(clean / "manifest.csv", tmp / "clean.zarr", FacesConfig(), SERIAL)
    store = open_store(tmp / "faces.zarr")
    failures = {f["clip_id"]: f for f in store.attrs["failures"]}
    return counts, problems, metrics, store, failures, open_store(tmp / "clean.zarr")


@pytest.mark.parametrize("clip, code, words", [
    ("sub02_truncated", "decode_error", "truncated JPEG"),
    ("sub06_tiny", "no_face", "16x16: too small"),
    ("sub10_noface", "no_face", "no face found"),
    ("sub11_twofaces", "several_faces", "2 faces"),
    ("sub99_escape", "annotation_invalid", "leaves"),
    ("../escaped", "annotation_invalid", "not a single safe path component"),
])
def test_faces_stage_names_the_error(results, clip: str, code: str, words: str) -> None:
    failures = results[4]
    assert failures[clip]["code"] == code
    assert words in failures[clip]["message"]


@pytest.mark.parametrize("clip, code", [
    ("sub03_zerobyte", "frames_unreadable"),
    ("sub04_missing", "frames_missing"),
    ("sub05_notimage", "frames_unreadable"),
    ("sub30_..-..-..-etc", "row_without_folder"),
])
def test_manifest_stage_names_the_error(results, clip: str, code: str) -> None:
    problems = results[1]
    assert f"{clip},sub{clip[3:5]},{code}," in problems


@pytest.mark.parametrize("clip", ["sub03_zerobyte", "sub04_missing", "sub05_notimage",
                                  "sub07_oddwidth", "sub08_huge", "sub09_grey"])
def test_survivable_inputs_are_processed(results, clip: str) -> None:
    store = results[3]
    assert clip in store.clip_ids
    frames = store.frames(clip)
    assert frames.shape[1:] == (224, 224, 3)
    if clip == "sub09_grey":
        assert np.abs(frames.astype(int)[..., 0] - frames[..., 2]).max() <= 2


def test_good_clips_are_intact(results, dataset) -> None:
    _, good = dataset
    _, _, metrics, store, failures, clean = results
    assert metrics["clips_failed"] == len(failures) == 6
    for clip in good:
        assert np.array_equal(store.frames(clip), clean.frames(clip))
        assert store.clip_attrs(clip)["content_key"] == clean.clip_attrs(clip)["content_key"]


def test_sheet_with_wrong_columns(tmp_path: Path) -> None:
    fakes.casme2_clip(tmp_path, 1, "EP01_01f", 1, 5)
    fakes.xlsx(tmp_path / "CASME2-coding-20140508.xlsx", ["Subject", "Clip", "Start", "End"],
               [[1, "EP01_01f", 1, 5]])
    with pytest.raises(SheetError, match="no header row with the columns subject, filename"):
        build_manifest("casme2", tmp_path, tmp_path / "out")


def test_video_with_no_frames_and_a_row_outside_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    (root / "empty.mp4").write_bytes(b"")
    writer = cv2.VideoWriter(str(root / "ok.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for _ in range(5):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    (tmp_path / "outside.avi").write_bytes((root / "ok.avi").read_bytes())
    (root / "annotations.csv").write_text("video,subject,onset,apex,offset,emotion\n"
                                          "empty.mp4,p1,0,1,2,surprise\n"
                                          "../outside.avi,p1,0,1,2,surprise\n"
                                          "ok.avi,p1,0,1,4,surprise\n")
    scan = videos.prepare(root)
    counts = build_manifest("videos", root, tmp_path / "out")
    problems = (tmp_path / "out" / "problems.csv").read_text()
    assert ",no_frames,excluded," in problems and "empty" in problems
    assert ",row_without_video,excluded," in problems and "outside" in problems
    assert 'empty,p1,no_frames,excluded,"sheet row 2: empty.mp4: no frame decodes' in problems
    assert counts["clips_ok"] == 1 and [c.clip_id for c in scan.clips] == ["ok"]
