"""CASME II: both layouts, every listed annotation fault, exact rows and problems."""

from pathlib import Path

import fakes
import pytest
from mesti.datasets_manifest import casme2
from mesti.datasets_manifest.manifest import build_manifest, read_manifest
from mesti.datasets_manifest.validate import ManifestConfig, validate


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "CASME2"
    fakes.casme2_clip(root, 1, "EP02_01f", 46, 60)           # clean
    fakes.casme2_clip(root, 1, "EP01_2", 10, 20)             # irregular name, exact match
    fakes.casme2_clip(root, 2, "EP09f", 100, 110)            # sheet says EP09
    fakes.casme2_clip(root, 2, "EP06_02_01", 5, 15)          # offset beyond the last frame
    fakes.casme2_clip(root, 3, "EP03_01f", 1, 12)            # apex equals onset, '?' in AUs
    fakes.casme2_clip(root, 4, "EP12_01f", 30, 40)           # apex '/'
    gap = fakes.casme2_clip(root, 5, "EP07_01f", 1, 20)      # one frame missing, one empty
    (gap / "img7.jpg").unlink()
    (gap / "img9.jpg").write_bytes(b"")
    holes = fakes.casme2_clip(root, 5, "EP08_01f", 1, 10)    # too many missing
    for n in (2, 3, 4):
        (holes / f"img{n}.jpg").unlink()
    fakes.casme2_clip(root, 6, "EP01_01f", 1, 10)            # onset after offset
    fakes.casme2_clip(root, 6, "EP02_01f", 1, 10)            # unknown emotion
    fakes.casme2_clip(root, 7, "EP05_01f", 1, 10)            # folder without a sheet row
    fakes.casme2_clip(root, 8, "EP01_01f", 1, 10)            # apex outside the window
    rows = [
        [1, "EP02_01f", None, 46, 52, 60, None, "4+9", "disgust"],
        ["01", "EP01_2", None, 10, 15, 20, None, "12", "happiness"],
        [2, "EP09", None, 100, 105, 110, None, "1+2", "surprise"],
        [2, "EP06_02_01", None, 5, 10, 18, None, "14", "repression"],
        [3, "EP03_01f", None, 1, 1, 12, None, "4+?", "others"],
        [4, "EP12_01f", None, 30, "/", 40, None, "4", "Disgust"],
        [5, "EP07_01f", None, 1, 8, 20, None, "12", "happiness"],
        [5, "EP08_01f", None, 1, 5, 10, None, "12", "happiness"],
        [6, "EP01_01f", None, 9, 5, 3, None, "4", "fear"],
        [6, "EP02_01f", None, 1, 5, 10, None, "4", "contempt"],
        [1, "EP02_01f", None, 46, 52, 60, None, "4+9", "disgust"],   # duplicate row
        [9, "EP01_01f", None, 1, 5, 10, None, "4", "sadness"],       # no folder
        [8, "EP01_01f", None, 1, 12, 10, None, "4", "sadness"],
    ]
    fakes.xlsx(root / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, rows)
    return root


def test_rows_and_problems_exact(dataset: Path) -> None:
    scan = casme2.prepare(dataset)
    records, problems = validate(scan, {}, ManifestConfig())
    rows = {r.clip_id: (r.subject, r.source, r.onset, r.apex, r.offset, r.frame_numbers,
                        r.emotion, r.label3, r.label5) for r in records}
    assert rows == {
        "sub01_EP02_01f": ("sub01", "sub01/EP02_01f", 46, 52, 60, list(range(46, 61)),
                           "disgust", "negative", "disgust"),
        "sub01_EP01_2": ("sub01", "sub01/EP01_2", 10, 15, 20, list(range(10, 21)),
                         "happiness", "positive", "happiness"),
        "sub02_EP09": ("sub02", "sub02/EP09f", 100, 105, 110, list(range(100, 111)),
                       "surprise", "surprise", "surprise"),
        "sub02_EP06_02_01": ("sub02", "sub02/EP06_02_01", 5, 10, 15, list(range(5, 16)),
                             "repression", "negative", "repression"),
        "sub03_EP03_01f": ("sub03", "sub03/EP03_01f", 1, 1, 12, list(range(1, 13)),
                           "others", None, "others"),
        "sub04_EP12_01f": ("sub04", "sub04/EP12_01f", 30, None, 40, list(range(30, 41)),
                           "disgust", "negative", "disgust"),
        "sub05_EP07_01f": ("sub05", "sub05/EP07_01f", 1, 8, 20,
                           [n for n in range(1, 21) if n not in (7, 9)],
                           "happiness", "positive", "happiness"),
        "sub08_EP01_01f": ("sub08", "sub08/EP01_01f", 1, None, 10, list(range(1, 11)),
                           "sadness", None, None),
    }
    assert records[0].frames[0] == "img46.jpg"
    found = {(p.clip_id, p.code, p.action) for p in problems}
    assert found == {
        ("sub02_EP09", "filename_mismatch", "fixed"),
        ("sub02_EP06_02_01", "window_clamped", "fixed"),
        ("sub03_EP03_01f", "apex_at_boundary", "kept"),
        ("sub04_EP12_01f", "apex_invalid", "fixed"),
        ("sub05_EP07_01f", "frames_unreadable", "fixed"),
        ("sub05_EP07_01f", "frames_missing", "kept"),
        ("sub05_EP08_01f", "frames_missing", "excluded"),
        ("sub06_EP01_01f", "onset_after_offset", "excluded"),
        ("sub06_EP02_01f", "unknown_label", "excluded"),
        ("sub01_EP02_01f", "duplicate_clip_id", "excluded"),
        ("sub09_EP01_01f", "row_without_folder", "excluded"),
        ("-", "folder_without_row", "ignored"),
        ("sub08_EP01_01f", "apex_outside_window", "fixed"),
    }
    details = {(p.clip_id, p.code): p.detail for p in problems}
    assert "'/' is not a frame number" in details["sub04_EP12_01f", "apex_invalid"]
    assert "img9.jpg: empty file" in details["sub05_EP07_01f", "frames_unreadable"]
    assert "sub07/EP05_01f" in details["-", "folder_without_row"]
    assert "clamped to 5..15" in details["sub02_EP06_02_01", "window_clamped"]
    assert "sheet row 12" in details["sub01_EP02_01f", "duplicate_clip_id"]


def test_cropped_layout_and_later_sheet_version(tmp_path: Path) -> None:
    root = tmp_path / "CASME2"
    fakes.casme2_clip(root, 1, "EP02_01f", 46, 50, tree="Cropped", prefix="reg_img")
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
              "Estimated Emotion", "Objective Class"]  # later versions reorder and add columns
    fakes.xlsx(root / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, [])
    fakes.xlsx(root / "CASME2-coding-20190701.xlsx", header,
               [[1, "EP02_01f", 46, 48, 50, "12", "happiness", 1]])
    scan = casme2.prepare(root)
    assert scan.sheet.name == "CASME2-coding-20190701.xlsx"
    records, problems = validate(scan, {}, ManifestConfig())
    assert [(r.clip_id, r.frames[0], r.apex) for r in records] == [
        ("sub01_EP02_01f", "reg_img46.jpg", 48)]
    assert problems == []


def test_manifest_files_round_trip(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = build_manifest("casme2", dataset, out)
    records = read_manifest(out / "manifest.csv")
    assert [r.clip_id for r in records] == [
        "sub01_EP02_01f", "sub01_EP01_2", "sub02_EP09", "sub02_EP06_02_01", "sub03_EP03_01f",
        "sub04_EP12_01f", "sub05_EP07_01f", "sub08_EP01_01f"]
    assert counts["clips_ok"] == 8
    assert counts["clips_excluded"] == 5
    assert records[5].apex is None and records[0].label5 == "disgust"
    assert records[2].frame_paths()[0] == dataset / "CASME2_RAW_selected/sub02/EP09f/img100.jpg"
    assert records[2].frame_paths()[0].is_file()
    report = (out / "report.md").read_text()
    assert "| sub06_EP02_01f | sub06 | unknown_label | excluded |" in report
