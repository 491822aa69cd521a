"""User mistakes and bad manifests, sheets and videos: each is one line naming the input and
the problem, with exit code 2 (usage) or 1 (data), and nothing outside is touched."""

import csv
import errno
import hashlib
import io
import shutil
from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
from click.testing import CliRunner
from mesti.datasets_manifest import casme2
from mesti.datasets_manifest.manifest import ManifestError, build_manifest, read_manifest
from mesti.datasets_manifest.validate import ManifestConfig, validate
from mesti.pipeline.faces import decode as frames_module
from mesti.pipeline.faces.align import FacesConfig
from mesti.pipeline.faces.decode import ClipError, header_size, iter_frames, read_image
from mesti.pipeline.runner import cluster as cluster_module
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import run_faces
from mesti.pipeline.sample.generator import SampleTargetError, generate_sample
from mesti.pipeline.stores import write as store_module
from openpyxl import load_workbook

from mesti.cli import main
from mesti.params import ParamsError, load_section

SHEET = "CASME2-coding-20140508.xlsx"


def digest(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content hash ('dir' for folders)."""
    return {p.relative_to(folder).as_posix():
            "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, code: int, *words: str) -> str:
    """The command failed with ``code`` and printed exactly one line holding every word;
    that line."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A tiny CASME II dataset, its manifest, an empty params file and a folder that is not
    a store (``tmp/elsewhere``: a stage must never touch it)."""
    raw = tmp_path / "raw"
    for subject, name in ((1, "EP01_01f"), (2, "EP02_01f"), (3, "EP03_01f")):
        fakes.casme2_clip(raw, subject, name, 1, 10)
    fakes.xlsx(raw / SHEET, fakes.CASME2_HEADER, [
        [1, "EP01_01f", None, 1, 5, 10, None, "12", "happiness"],
        [2, "EP02_01f", None, 1, 5, 10, None, "4", "disgust"],
        [3, "EP03_01f", None, 1, 5, 10, None, "1+2", "surprise"],
    ])
    build_manifest("casme2", raw, tmp_path / "manifest")
    (tmp_path / "empty.yaml").write_text("")
    photo = tmp_path / "elsewhere" / "clips" / "holiday_2019" / "photo.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"not yours")
    return tmp_path


# --- manifests: written only with usable rows; read only when every row is sound ----------

def test_no_usable_clip_writes_no_manifest(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    fakes.casme2_clip(raw, 1, "EP01_01f", 1, 10)
    fakes.xlsx(raw / SHEET, fakes.CASME2_HEADER, [
        [1, "EP01_01f", None, 9, 5, 3, None, "4", "disgust"],
        [1, "EP09_01f", None, 1, 5, 10, None, "4", "disgust"],
    ])
    (tmp_path / "empty.yaml").write_text("")
    before = digest(raw)
    result = invoke("manifest", "casme2", raw, tmp_path / "out", "--params",
                    tmp_path / "empty.yaml")
    one_line_error(result, 1, str(raw), "no usable casme2 clip of 2 found",
                   "onset_after_offset x1", "row_without_folder x1", "no manifest written")
    assert not (tmp_path / "out" / "manifest.csv").exists()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "onset_after_offset" in report and "row_without_folder" in report
    assert (tmp_path / "out" / "problems.csv").is_file() and digest(raw) == before


def _rewrite(manifest: Path, out: Path, change) -> Path:
    rows = list(csv.DictReader(manifest.open(newline="")))
    rows = change(rows)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(csv.DictReader(
            manifest.open(newline="")).fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    return out


BAD_MANIFESTS = {
    "header_only": (lambda rows: [], "holds no clip (only its header)"),
    "duplicate": (lambda rows: [*rows, rows[0]],
                  "clip id 'sub01_EP01_01f' is on lines 2 and 5"),
    "onset_abc": (lambda rows: [rows[0], {**rows[1], "onset": "abc"}, rows[2]],
                  "line 3, column onset: 'abc' is not an integer"),
    "kind_audio": (lambda rows: [{**rows[0], "kind": "audio"}, *rows[1:]],
                   "line 2, column kind: 'audio' is not one of"),
    "fps_text": (lambda rows: [*rows[:2], {**rows[2], "fps": "fast"}],
                 "line 4, column fps: 'fast' is not a number"),
    "frames_short": (lambda rows: [{**rows[0], "frames": "img1.jpg"}, *rows[1:]],
                     "line 2, column frames: 1 frame(s) for 10 frame number(s)"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_faces_refuses_a_bad_manifest_before_writing(work: Path, case: str) -> None:
    change, words = BAD_MANIFESTS[case]
    bad = _rewrite(work / "manifest" / "manifest.csv", work / f"{case}.csv", change)
    with pytest.raises(ManifestError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(bad)
    before = digest(work)
    result = invoke("faces", bad, work / "elsewhere", "--workers", "0", "--no-progress",
                    "--params", work / "empty.yaml")
    one_line_error(result, 1, str(bad), words)
    result = invoke("faces", bad, work / "new.zarr", "--workers", "0", "--no-progress",
                    "--params", work / "empty.yaml")
    one_line_error(result, 1, words)
    assert digest(work) == before and not (work / "new.zarr").exists()


@pytest.mark.parametrize("name, words", [
    ("problems.csv", "not a manifest; missing columns"),
    ("report.md", "not a manifest; missing columns"),
    ("sheet.xlsx", "is a spreadsheet, not a manifest"),
])
def test_faces_refuses_files_that_are_not_manifests(work: Path, name: str, words: str) -> None:
    given = work / "manifest" / name
    if name.endswith(".xlsx"):
        shutil.copy(work / "raw" / SHEET, given)
    before = digest(work)
    result = invoke("faces", given, work / "new.zarr", "--workers", "0", "--no-progress",
                    "--params", work / "empty.yaml")
    one_line_error(result, 1, str(given), words)
    assert digest(work) == before


def test_a_column_added_by_hand_is_ignored(work: Path) -> None:
    folder = work / "manifest"
    lines = (folder / "manifest.csv").read_text().splitlines()
    (folder / "noted.csv").write_text("\n".join([lines[0] + ",note",
                                                 *(f"{line},checked" for line in lines[1:])]))
    assert read_manifest(folder / "noted.csv") == read_manifest(folder / "manifest.csv")


def test_manifest_moves_with_its_data(work: Path, monkeypatch) -> None:
    manifest = work / "manifest" / "manifest.csv"
    roots = {row["root"] for row in csv.DictReader(manifest.open())}
    assert roots == {"../raw/CASME2_RAW_selected"}
    moved = work.parent / f"{work.name}-moved"
    shutil.copytree(work / "raw", moved / "data" / "raw")
    shutil.copytree(work / "manifest", moved / "data" / "manifest")
    shutil.rmtree(work / "raw")
    monkeypatch.chdir(work / "elsewhere")  # another working directory
    records = read_manifest(moved / "data" / "manifest" / "manifest.csv")
    assert {r.root for r in records} == {(moved / "data" / "raw" / "CASME2_RAW_selected")
                                         .as_posix()}
    assert all(p.is_file() for r in records for p in r.frame_paths())
    relative = read_manifest(Path("..").joinpath("..", f"{work.name}-moved", "data",
                                                  "manifest", "manifest.csv"))
    assert [r.root for r in relative] == [r.root for r in records]


def test_absolute_paths_when_asked(work: Path) -> None:
    result = invoke("manifest", "casme2", work / "raw", work / "abs", "--absolute-paths",
                    "--params", work / "empty.yaml")
    assert result.exit_code == 0, result.output
    roots = {row["root"] for row in csv.DictReader((work / "abs" / "manifest.csv").open())}
    assert roots == {(work / "raw" / "CASME2_RAW_selected").as_posix()}
    assert [r.root for r in read_manifest(work / "abs" / "manifest.csv")] == \
        [r.root for r in read_manifest(work / "manifest" / "manifest.csv")]


# --- sheets: subjects, literal cells, encrypted workbooks ------------------------------------

def test_casme2_blank_merged_and_float_subjects(tmp_path: Path) -> None:
    root = tmp_path / "c2"
    for subject, name in ((1, "EP01_01f"), (2, "EP03_01f"), (3, "EP04_01f"), (3, "EP05_01f"),
                          (4, "EP06_01f")):
        fakes.casme2_clip(root, subject, name, 1, 10)
    sheet = fakes.xlsx(root / SHEET, fakes.CASME2_HEADER, [
        [1, "EP01_01f", None, 1, 5, 10, None, "12", "happiness"],     # sheet row 2
        [None, "EP02_01f", None, 1, 5, 10, None, "4", "disgust"],     # 3: blank subject
        ["2.0", "EP03_01f", None, 1, 5, 10, None, "4", "disgust"],    # 4: text '2.0'
        [3, "EP04_01f", None, 1, 5, 10, None, "4", "disgust"],        # 5: merged with 6
        [3, "EP05_01f", None, 1, 5, 10, None, "4", "disgust"],        # 6
        [4.0, "EP06_01f", None, 1, 5, 10, None, "4", "disgust"],      # 7: number 4.0
    ])
    book = load_workbook(sheet)
    book.active.merge_cells("A5:A6")
    book.save(sheet)
    records, problems = validate(casme2.prepare(root), {}, ManifestConfig())
    assert [r.clip_id for r in records] == ["sub01_EP01_01f", "sub02_EP03_01f",
                                            "sub03_EP04_01f", "sub04_EP06_01f"]
    invalid = {p.clip_id: p.detail for p in problems if p.code == "subject_invalid"}
    assert set(invalid) == {"row3", "row6"}
    assert invalid["row3"].startswith("sheet row 3: subject '' is not a subject number")
    assert "EP05_01f" in invalid["row6"] and invalid["row6"].startswith("sheet row 6")
    assert all(p.action == "excluded" for p in problems if p.code == "subject_invalid")
    assert casme2._subject("sub2") == casme2._subject(2.0) == "sub02"
    assert casme2._subject("2.5") is None and casme2._subject("x") is None


LITERAL_ROWS = [
    [1, "EP01_01f", None, 1, "N/A", 10, None, "12", "happiness"],
    [1, "EP02_01f", None, 1, "#N/A", 10, None, "NA", "disgust"],
    [1, "EP03_01f", None, 1, 5, 10, None, "null", "None"],
    [1, "EP04_01f", None, 1, 5, 10, None, "4", "NA"],
    [1, "EP05_01f", None, 1, 5, 10, None, "4", "surprise"],
]


def test_xlsx_and_csv_sheets_give_one_report(tmp_path: Path) -> None:
    root = tmp_path / "c2"
    for name in ("EP01_01f", "EP02_01f", "EP03_01f", "EP04_01f", "EP05_01f"):
        fakes.casme2_clip(root, 1, name, 1, 10)
    fakes.xlsx(tmp_path / "sheets" / "coding.xlsx", fakes.CASME2_HEADER, LITERAL_ROWS)
    text = io.StringIO()
    csv.writer(text).writerows([fakes.CASME2_HEADER, *LITERAL_ROWS])
    (tmp_path / "sheets" / "coding.csv").write_text(text.getvalue())
    for kind in ("xlsx", "csv"):
        build_manifest("casme2", root, tmp_path / kind,
                       sheet=tmp_path / "sheets" / f"coding.{kind}")
    for name in ("manifest.csv", "problems.csv", "counts.json"):
        assert (tmp_path / "xlsx" / name).read_text() == (tmp_path / "csv" / name).read_text()
    reports = [(tmp_path / kind / "report.md").read_text().replace(f"coding.{kind}", "coding")
               for kind in ("xlsx", "csv")]
    assert reports[0] == reports[1]
    problems = {(r["clip_id"], r["code"], r["action"])
                for r in csv.DictReader((tmp_path / "csv" / "problems.csv").open())}
    assert problems == {("sub01_EP01_01f", "apex_invalid", "fixed"),
                        ("sub01_EP02_01f", "apex_invalid", "fixed"),
                        ("sub01_EP03_01f", "unknown_label", "excluded"),
                        ("sub01_EP04_01f", "unknown_label", "excluded")}
    details = (tmp_path / "xlsx" / "problems.csv").read_text()
    assert "apex 'N/A' is not a frame number" in details and "emotion 'none'" in details
    assert load_workbook(tmp_path / "sheets" / "coding.xlsx").active["E3"].data_type == "e"
    rows = {r.clip_id: r for r in read_manifest(tmp_path / "xlsx" / "manifest.csv")}
    assert rows["sub01_EP02_01f"].action_units == "NA" and rows["sub01_EP01_01f"].apex is None


def test_encrypted_xlsx_is_named_not_sent_to_xlrd(work: Path) -> None:
    encrypted = work / "locked.xlsx"
    encrypted.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
                          + "EncryptedPackage".encode("utf-16-le") + bytes(1000))
    before = digest(work)
    result = invoke("manifest", "casme2", work / "raw", work / "out", "--sheet", encrypted,
                    "--params", work / "empty.yaml")
    one_line_error(result, 1, str(encrypted), "encrypted (password-protected)")
    assert "xlrd" not in result.output and digest(work) == before


# --- videos: per-video fps, text files, truncated files ---------------------------------------

def _avi(path: Path, fps: float, n: int = 10) -> list[np.ndarray]:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    images = []
    for i in range(n):
        image = np.full((48, 64, 3), 10 + 20 * i, np.uint8)
        image[:, : 6 * i] = 250
        writer.write(image)
        images.append(image)
    writer.release()
    return images


def test_videos_fps_per_video_and_a_text_mp4(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    (root / "a_notes.mp4").write_text("this is not a video\n")   # sorts first
    _avi(root / "b25.avi", 25)
    _avi(root / "p2" / "c30.avi", 30)
    counts = build_manifest("videos", root, tmp_path / "out")
    records = {r.clip_id: r for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert {k: r.fps for k, r in records.items()} == {"b25": 25.0, "p2-c30": 30.0}
    problems = list(csv.DictReader((tmp_path / "out" / "problems.csv").open()))
    assert [(p["clip_id"], p["code"], p["action"]) for p in problems] == [
        ("a_notes", "no_frames", "excluded")]
    assert counts["clips_ok"] == 2


def test_truncated_avi_is_a_named_failure(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    images = _avi(root / "whole.avi", 30)
    data = (root / "whole.avi").read_bytes()
    (root / "cut.avi").write_bytes(data[: int(len(data) * 0.75)])
    decoded = []
    capture = cv2.VideoCapture(str(root / "cut.avi"))
    while (frame := capture.read())[0]:
        decoded.append(frame[1])
    # the failure this guards against: a short file whose last frame repeats an earlier one
    nearest = [int(np.argmin([np.abs(d.astype(int) - i).mean() for i in images]))
               for d in decoded]
    assert len(decoded) < 10 and nearest[-1] < len(decoded) - 1

    build_manifest("videos", root, tmp_path / "out")
    problems = {p["clip_id"]: p for p in csv.DictReader((tmp_path / "out" / "problems.csv")
                                                        .open())}
    assert problems["cut"]["code"] == "video_truncated"
    assert problems["cut"]["action"] == "excluded"
    assert f"{len(decoded)} of the 10 frames its container declares" in problems["cut"]["detail"]
    assert [r.clip_id for r in read_manifest(tmp_path / "out" / "manifest.csv")] == ["whole"]

    # truncated after its manifest was written: the faces stage's reader fails the clip
    wanted = [str(i) for i in range(len(decoded))]
    assert len(list(iter_frames("whole", "video", root / "whole.avi", wanted))) == len(wanted)
    with pytest.raises(ClipError, match="truncated") as error:
        list(iter_frames("cut", "video", root / "cut.avi", wanted))
    assert error.value.code == "decode_error"
    assert f"decodes to {len(decoded)} of the 10 frames" in error.value.message


# --- frames above the pixel cap are refused from their header ---------------------------------

@pytest.mark.parametrize("suffix, flags", [
    (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".png", []), (".bmp", []),
])
@pytest.mark.parametrize("width, height", [(37, 23), (640, 480), (1, 300)])
def test_header_size_matches_the_decoder(suffix: str, flags: list, width: int,
                                         height: int) -> None:
    image = np.random.default_rng(width).integers(0, 255, (height, width, 3), np.uint8)
    data = cv2.imencode(suffix, image, flags)[1].tobytes()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert header_size(data) == (decoded.shape[1], decoded.shape[0]) == (width, height)
    assert header_size(b"not an image") is None


def _huge_jpeg(path: Path, width: int, height: int) -> None:
    """A valid small JPEG whose start-of-frame header claims ``width`` x ``height``."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_huge_frame_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "img1.jpg"
    _huge_jpeg(path, 10000, 10000)
    assert header_size(path.read_bytes()) == (10000, 10000)

    def no_decoding(*args):
        raise AssertionError("decoded a frame over the pixel cap")

    monkeypatch.setattr(frames_module.cv2, "imdecode", no_decoding)
    with pytest.raises(ClipError, match=r"10000x10000 \(100 Mpx\), over max_frame_pixels=40000000"):
        read_image("c", path)
    assert FacesConfig().max_frame_pixels == 40_000_000


def test_pixel_cap_is_a_faces_knob(work: Path) -> None:
    folder = work / "big" / "CASME2_RAW_selected" / "sub01" / "EP01_01f"
    folder.mkdir(parents=True)
    for n in range(1, 4):
        cv2.imwrite(str(folder / f"img{n}.jpg"), np.full((48, 64, 3), 100, np.uint8))
    fakes.xlsx(work / "big" / SHEET, fakes.CASME2_HEADER,
               [[1, "EP01_01f", None, 1, 2, 3, None, "4", "disgust"]])
    build_manifest("casme2", work / "big", work / "big-manifest")
    params = work / "cap.yaml"
    params.write_text("faces:\n  max_frame_pixels: 3000\n")
    config = load_section(FacesConfig, params, "faces")
    metrics = run_faces(work / "big-manifest" / "manifest.csv", work / "big.zarr", config,
                        ClusterOptions(workers=0, progress=False))
    assert metrics["failures"] == {"decode_error": 1}
    params.write_text("faces:\n  max_frame_pixels: 0\n")
    with pytest.raises(ParamsError, match=r"\[faces\]: invalid faces settings: "
                                          "max_frame_pixels >= 1024"):
        load_section(FacesConfig, params, "faces")


# --- the command line: params, stores, cluster options, disk, bugs ---------------------------

@pytest.mark.parametrize("text, command, words", [
    ("train: [1\n", "train", "not valid YAML (line 2)"),
    ("- train\n", "train", "expected a mapping of stage sections, got a list"),
    ("train: 3\n", "train", "[train]: expected a mapping of knobs, got a int"),
    ("train:\n  batch_size: 0\n", "train", "batch_size >= 1 must hold"),
    ("train:\n  input_size: 0\n", "train", "input_size >= 16 must hold"),
    ("faces:\n  size: 0\n", "faces", "size >= 32 must hold"),
    ("manifest:\n  min_frames: 0\n", "manifest", "min_frames must be at least 1"),
    ("sample:\n  subjects: 0\n", "sample", "subjects >= 1 must hold"),
])
def test_bad_params_files(work: Path, text: str, command: str, words: str) -> None:
    params = work / "bad.yaml"
    params.write_text(text)
    args = {"train": ["train", work / "nostore", work / "run"],
            "faces": ["faces", work / "manifest" / "manifest.csv", work / "new.zarr"],
            "manifest": ["manifest", "casme2", work / "raw", work / "out"],
            "sample": ["sample", work / "sample"]}[command]
    before = digest(work)
    one_line_error(invoke(*args, "--params", params), 2, str(params), words)
    assert digest(work) == before


def test_missing_params_file_is_an_error_the_default_may_be_absent(work: Path,
                                                                   monkeypatch) -> None:
    before = digest(work)
    result = invoke("manifest", "casme2", work / "raw", work / "out", "--params",
                    work / "typo.yaml")
    one_line_error(result, 2, "typo.yaml: params file not found")
    assert digest(work) == before
    monkeypatch.chdir(work / "elsewhere")
    result = CliRunner().invoke(main, ["manifest", "casme2", str(work / "raw"),
                                       str(work / "out")])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("no params.yaml here: every knob at its default") == 1


@pytest.fixture
def stores(work: Path) -> dict[str, Path]:
    """An empty faces store and an empty modality store holding the image 'mesti'."""
    made = {}
    for kind, attrs in (("faces", {}), ("modalities", {"images": ["mesti"]})):
        path = work / f"{kind}.zarr"
        store_module.open_for_writing(path, kind, {"dataset": "casme2", **attrs})
        store_module.finalise(path, [], {})
        made[kind] = path
    return made


def test_stores_of_the_wrong_kind_or_missing(work: Path, stores: dict[str, Path]) -> None:
    before = digest(work)
    empty = ["--params", work / "empty.yaml"]
    one_line_error(invoke("train", stores["faces"], work / "run", *empty), 2,
                   f"{stores['faces']}: is a faces store; mesti train --model meganet needs a "
                   "modalities store")
    one_line_error(invoke("modalities", stores["modalities"], work / "out.zarr", *empty), 2,
                   "is a modalities store; mesti modalities needs a faces store")
    one_line_error(invoke("train", work / "missing.zarr", work / "run", *empty), 1,
                   "missing.zarr: no zarr store here")
    one_line_error(invoke("train", stores["modalities"], work / "run", "--modality", "mesti",
                          "--modality", "nope", *empty), 2,
                   "no image 'nope'; it has mesti (--modality or train.modality)")
    one_line_error(invoke("cache", "export", stores["faces"], work / "absent" / "s.zip"), 2,
                   "s.zip: the folder", "absent does not exist")
    assert digest(work) == before


@pytest.mark.parametrize("options, words", [
    (["--scheduler", "tcp://127.0.0.1:9"],
     "--scheduler: cannot reach tcp://127.0.0.1:9 within 1 s"),
    (["--scheduler-file", "absent.json"], "--scheduler-file absent.json: no such file"),
    (["--jobqueue", "nope"], "--jobqueue 'nope': unknown job queue; dask-jobqueue has"),
    (["--jobqueue", "slurm"], "--jobqueue 'slurm': not configured"),
])
def test_unusable_cluster_options(work: Path, monkeypatch, options: list[str],
                                  words: str) -> None:
    import dask

    if "--jobqueue" in options:
        pytest.importorskip("dask_jobqueue", reason="--jobqueue needs the 'cluster' extra")
    monkeypatch.setattr(cluster_module, "SCHEDULER_CONNECT_TIMEOUT_S", 1)
    monkeypatch.chdir(work)
    before = digest(work)
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        result = invoke("faces", work / "manifest" / "manifest.csv", work / "new.zarr",
                        "--no-progress", "--params", work / "empty.yaml", *options)
    one_line_error(result, 2, words)
    assert digest(work) == before


def test_disk_full_names_the_path_and_free_space(work: Path, monkeypatch) -> None:
    from mesti.datasets_manifest import manifest as manifest_module

    def full(problems, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(manifest_module, "_write_problems", full)
    result = invoke("manifest", "casme2", work / "raw", work / "out", "--params",
                    work / "empty.yaml")
    one_line_error(result, 1, f"{work / 'out' / 'problems.csv'}: no space left on device",
                   "MB free on that file system")


def test_sample_refuses_a_folder_that_is_not_empty(work: Path) -> None:
    before = digest(work)
    one_line_error(invoke("sample", work / "raw", "--params", work / "empty.yaml"), 2,
                   f"{work / 'raw'}: is a folder that is not empty")
    with pytest.raises(SampleTargetError, match="is not a folder"):
        generate_sample(work / "raw" / SHEET)
    assert digest(work) == before


def test_programming_errors_keep_their_traceback(work: Path, monkeypatch) -> None:
    from mesti.datasets_manifest import manifest as manifest_module

    def bug(*args, **kwargs):
        raise KeyError("a bug, not a user mistake")

    monkeypatch.setattr(manifest_module, "build_manifest", bug)
    result = invoke("manifest", "casme2", work / "raw", work / "out", "--params",
                    work / "empty.yaml")
    assert isinstance(result.exception, KeyError) and result.exit_code == 1
