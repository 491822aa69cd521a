"""Long-video recipes (casme2_lv, samm_lv, casme3_lv) on tiny trees in the owners' layouts,
and the long-video manifest's fault report (datasets_manifest/long_videos.py)."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mesti.datasets_manifest import LONG_VIDEO_RECIPES
from mesti.datasets_manifest.manifest import build_long_manifest
from openpyxl import Workbook

from mesti.cli import main

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(JPEG)


def casme2_tree(root: Path) -> Path:
    """rawpic/s15/15_0101disgustingteeth/img1.jpg.. and CAS(ME)^2code_final.xlsx (3 sheets)."""
    frames(root / "rawpic/s15/15_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 101)])
    frames(root / "rawpic/s15/15_0102eatingworms",
           [f"img{i}.jpg" for i in range(1, 81) if i not in (40, 41)])
    frames(root / "rawpic/s16/16_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 51)])
    book = Workbook()
    codes = book.active
    codes.title = "CASFEcode_final"
    for row in [
        [1, "disgust1_1", 10, 14, 18, "4+9", "disgust", "micro-expression", "disgust"],
        [1, "disgust1_2", 30, 50, 80, "4", "disgust", "macro-expression", "disgust"],
        [1, "disgust1_3", 70, 75, 0, "4", "disgust", "macro-expression", "disgust"],  # open
        [1, "disgust2_1", 35, 38, 45, "12", "others", "micro-expression", "happy"],  # gap
        [1, "disgust2_2", 60, 55, 50, "12", "others", "macro-expression", "happy"],  # reversed
        [2, "disgust1_1", 40, 45, 60, "12", "others", "macro-expression", "happy"],  # outside
        [2, "anger1_1", 5, 6, 9, "12", "anger", "micro-expression", "anger"],  # no folder
    ]:
        codes.append(row)
    rule1 = book.create_sheet("naming rule1")
    rule1.append([15, "s15", 1])
    rule1.append([16, "s16", 2])
    rule2 = book.create_sheet("naming rule2")
    rule2.append(["0101", "disgust1"])
    rule2.append(["0102", "disgust2"])
    rule2.append(["0401", "anger1"])
    book.save(root / "CAS(ME)^2code_final.xlsx")
    return root


def samm_tree(root: Path) -> Path:
    frames(root / "SAMM_longvideos/006_1", [f"006_1_{i:04d}.jpg" for i in range(1, 401)])
    frames(root / "SAMM_longvideos/007_2", [f"007_2_{i:04d}.jpg" for i in range(1, 301)])
    book = Workbook()
    sheet = book.active
    for line in ("SAMM Long Videos", "Key:", "/ = or", "? = unsure", "", "", "", "", ""):
        sheet.append([line])
    sheet.append(["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset",
                  "Duration", "Type", "Action Units", "Notes"])
    sheet.append(["006", "006_1_1", 1, 100, 140, 170, 71, "Micro - 1/2", "R12", None])
    sheet.append(["006", "006_1_2", 1, 160, 250, 390, 231, "Macro", "4+7", None])  # overlaps
    sheet.append(["007", "007_2_1", 2, 250, 280, 350, 101, "Macro", "12", None])  # outside
    sheet.append(["007", "007_2_2", 2, 20, 30, 40, 21, "Blink", "45", None])  # unknown type
    book.save(root / "SAMM_LongVideos_V3_Release.xlsx")
    return root


def casme3_tree(root: Path) -> Path:
    frames(root / "part_A/spNO.1/a/color", [f"{i}.jpg" for i in range(1, 121)])
    frames(root / "part_A/spNO.2/b/color", [f"{i}.jpg" for i in range(1, 61)])
    with (root / "CAS(ME)3_part_A_v1.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Type",
                         "emotion"])
        writer.writerow(["spNO.1", "a", 10, 14, 20, "4", "Micro-expression", "disgust"])
        writer.writerow(["spNO.1", "a", 40, "", 100, "12", "Macro-expression", "happy"])
        writer.writerow(["spNO.2", "b", "x", 5, 9, "12", "Macro-expression", "happy"])
    return root


def read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def problems(out: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in read(out / "problems.csv"):
        found.setdefault(row["code"], []).append(row)
    return found


def test_registry_holds_the_three_recipes_with_their_citations() -> None:
    assert sorted(LONG_VIDEO_RECIPES) == ["casme2_lv", "casme3_lv", "samm_lv"]
    for recipe, author in (("casme2_lv", "Qu"), ("samm_lv", "Yap"), ("casme3_lv", "Li")):
        doc = LONG_VIDEO_RECIPES[recipe].__doc__
        assert author in doc and "Licence" in doc and "Layout" in doc


def test_casme2_lv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = build_long_manifest("casme2_lv", casme2_tree(tmp_path / "raw"), out)
    videos = {r["video"]: r for r in read(out / "videos.csv")}
    assert sorted(videos) == ["15_0101", "15_0102", "16_0101"]
    assert videos["15_0102"]["missing_frames"] == "2" and videos["15_0101"]["fps"] == "30.0"
    assert videos["15_0101"]["source"] == "s15/15_0101disgustingteeth"
    intervals = [(r["video"], int(r["onset"]), int(r["offset"]), r["type"])
                 for r in read(out / "intervals.csv")]
    assert intervals == [("15_0101", 10, 18, "micro"), ("15_0101", 30, 80, "macro"),
                         ("15_0101", 70, 80, "macro"), ("15_0102", 35, 45, "micro")]
    found = problems(out)
    assert found["onset_after_offset"][0]["clip_id"] == "15_0102"
    assert found["interval_outside_video"][0]["clip_id"] == "16_0101"
    assert found["row_without_video"][0]["clip_id"] == "16_0401"
    assert found["offset_note"][0]["action"] == "fixed"  # offset 0 -> 75 + 5 = 80
    assert found["interval_missing_frames"][0]["clip_id"] == "15_0102"
    assert found["missing_frames"][0]["action"] == "kept"
    assert [p["clip_id"] for p in found["overlapping"]] == ["15_0101"]
    assert counts["micro"] == 2 and counts["macro"] == 2


def test_samm_lv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_long_manifest("samm_lv", samm_tree(tmp_path / "raw"), out)
    videos = {r["video"]: r for r in read(out / "videos.csv")}
    assert videos["006_1"]["last_frame"] == "400" and videos["006_1"]["fps"] == "200.0"
    intervals = [(r["video"], r["onset"], r["offset"], r["type"])
                 for r in read(out / "intervals.csv")]
    assert intervals == [("006_1", "100", "170", "micro"), ("006_1", "160", "390", "macro")]
    found = problems(out)
    assert found["overlapping"][0]["clip_id"] == "006_1"
    assert "250..350" in found["interval_outside_video"][0]["detail"]
    assert "'blink'" in found["type_unknown"][0]["detail"]


def test_casme3_lv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_long_manifest("casme3_lv", casme3_tree(tmp_path / "raw"), out)
    intervals = [(r["video"], r["onset"], r["apex"], r["offset"], r["type"])
                 for r in read(out / "intervals.csv")]
    assert intervals == [("spNO.1_a", "10", "14", "20", "micro"),
                         ("spNO.1_a", "40", "", "100", "macro")]
    found = problems(out)
    assert found["onset_invalid"][0]["clip_id"] == "spNO.2_b"
    assert found["video_without_interval"][0]["clip_id"] == "spNO.2_b"


def test_a_video_missing_too_many_frames_is_excluded(tmp_path: Path) -> None:
    root = casme3_tree(tmp_path / "raw")
    for i in range(1, 40):
        (root / f"part_A/spNO.1/a/color/{i}.jpg").unlink()
    (root / "part_A/spNO.1/a/color/1.jpg").write_bytes(JPEG)
    out = tmp_path / "out"
    build_long_manifest("casme3_lv", root, out)
    assert [r["video"] for r in read(out / "videos.csv")] == ["spNO.2_b"]
    assert read(out / "intervals.csv") == []
    assert problems(out)["missing_frames"][0]["action"] == "excluded"


def test_spot_manifest_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["spot-manifest", "samm_lv",
                                       str(samm_tree(tmp_path / "raw")), str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0]) == {"videos_ok": 2, "intervals_ok": 2,
                                                          "micro": 1, "macro": 1}
    # The manifest's truth feeds spot-eval directly.
    spots = tmp_path / "spots.csv"
    spots.write_text("video,onset,offset,type,score\n006_1,100,168,micro,1\n")
    result = CliRunner().invoke(main, ["spot-eval", str(spots), str(out)])
    assert "| samm_lv | micro | 1 | 0 | 0 |" in result.output


@pytest.mark.parametrize("dataset", ["casme2_lv", "samm_lv", "casme3_lv"])
def test_spot_manifest_without_the_dataset_is_one_line(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "raw").mkdir()
    result = CliRunner().invoke(main, ["spot-manifest", dataset, str(tmp_path / "raw"),
                                       str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_casme2_workbook_without_its_naming_sheets_is_one_line(tmp_path: Path) -> None:
    root = casme2_tree(tmp_path / "raw")
    book = Workbook()
    book.active.append([1, "disgust1_1", 10, 14, 18, "4", "disgust", "micro-expression", ""])
    book.save(root / "CAS(ME)^2code_final.xlsx")
    result = CliRunner().invoke(main, ["spot-manifest", "casme2_lv", str(root),
                                       str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "naming-rule sheets" in result.output
    assert len(result.output.strip().splitlines()) == 1
