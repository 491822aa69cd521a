"""SAMM, SMIC-HS, CAS(ME)^3 and plain videos: layouts, faults, exact rows and problems."""

from pathlib import Path

import cv2
import fakes
import numpy as np
import pytest
from mesti.datasets_manifest import casme3, samm, smic, videos
from mesti.datasets_manifest.validate import ManifestConfig, validate


def _check(scan):
    records, problems = validate(scan, {}, ManifestConfig())
    return records, {(p.clip_id, p.code, p.action) for p in problems}


def test_samm_preamble_and_faults(tmp_path: Path) -> None:
    root = tmp_path / "SAMM_data"
    fakes.samm_clip(root, 6, "006_1_2", 5562, 5580)
    fakes.samm_clip(root, 28, "028_4_1", 100, 120)
    fakes.samm_clip(root, 32, "032_3_1", 200, 230)
    fakes.samm_clip(root, 7, "007_5_1", 10, 30)
    rows = [
        [6, "006_1_2", "1", 5562, 5570, 5580, 19, "Micro", "R12", "Happiness", "2", ""],
        [28, "028_4_1", "4", 100, 130, 120, 21, "Micro", "4", "Anger", "1", ""],
        [32, "032_3_1", "3", 200, "210/215", 230, 31, "Micro", "4", "Contempt", "1", ""],
        [7, "007_5_1", "5", 10, 20, "30?", 21, "Micro", "1+2", "Other", "7", ""],
    ]
    fakes.xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", fakes.SAMM_HEADER, rows,
               preamble=fakes.SAMM_PREAMBLE)
    scan = samm.prepare(root)
    assert scan.root == root / "SAMM"
    records, problems = _check(scan)
    rows = [(r.clip_id, r.subject, r.onset, r.apex, r.offset, r.label3, r.label5)
            for r in records]
    assert rows == [
        ("006_1_2", "006", 5562, 5570, 5580, "positive", "happiness"),
        ("028_4_1", "028", 100, None, 120, "negative", "anger"),
        ("032_3_1", "032", 200, 210, 230, "negative", "contempt"),
        ("007_5_1", "007", 10, 20, 30, None, "other"),
    ]
    assert records[0].frames[:2] == ["006_05562.jpg", "006_05563.jpg"]
    assert problems == {("028_4_1", "apex_outside_window", "fixed"),
                        ("032_3_1", "apex_unsure", "kept"),
                        ("007_5_1", "offset_unsure", "kept")}


def test_smic_labels_from_folders(tmp_path: Path) -> None:
    root = tmp_path / "SMIC"
    fakes.smic_clip(root, 1, "negative", 1, 1000, 1020)
    fakes.smic_clip(root, 1, "positive", 2, 50, 70)
    gap = fakes.smic_clip(root, 20, "surprise", 1, 0, 29)
    (gap / "image000015.bmp").unlink()
    (root / "HS" / "s3").mkdir(parents=True)
    records, problems = _check(smic.prepare(root))
    assert [(r.clip_id, r.subject, r.onset, r.apex, r.offset, r.n_frames, r.label3, r.label5)
            for r in records] == [
        ("s1_ne_01", "s1", 1000, None, 1020, 21, "negative", None),
        ("s1_po_02", "s1", 50, None, 70, 21, "positive", None),
        ("s20_su_01", "s20", 0, None, 29, 29, "surprise", None),
    ]
    assert problems == {("s20_su_01", "frames_missing", "kept"),
                        ("-", "no_micro_folder", "ignored")}
    with pytest.raises(ValueError, match="no annotation sheet"):
        smic.prepare(root, sheet=tmp_path / "x.xlsx")


def test_casme3_repeated_filename_and_dropped_frames(tmp_path: Path) -> None:
    root = tmp_path / "casme3"
    folder = fakes.casme3_clip(root, 1, "a", 1, 400)
    (folder / "205.jpg").unlink()
    fakes.casme3_clip(root, 2, "b", 10, 50)
    rows = [["spNO.1", "a", 100, 110, 130, "4", "1", "disgust"],
            ["spNO.1", "a", 200, 210, 240, "12", "2", "happy"],
            ["spNO.2", "b", 10, 20, 30, "1+2", "3", "surprise"],
            ["spNO.3", "c", 10, 20, 30, "1+2", "3", "surprise"]]
    fakes.xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", fakes.CASME3_HEADER, rows)
    records, problems = _check(casme3.prepare(root))
    assert [(r.clip_id, r.source, r.onset, r.apex, r.offset, r.n_frames, r.label3)
            for r in records] == [
        ("spNO.1_a_100", "spNO.1/a/color", 100, 110, 130, 31, "negative"),
        ("spNO.1_a_200", "spNO.1/a/color", 200, 210, 240, 40, "positive"),
        ("spNO.2_b", "spNO.2/b/color", 10, 20, 30, 21, "surprise"),
    ]
    assert problems == {("spNO.1_a_200", "frames_missing", "kept"),
                        ("spNO.3_c", "row_without_folder", "excluded")}


def _video(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    for i in range(n):
        writer.write(np.full((24, 32, 3), i * 5 % 255, np.uint8))
    writer.release()


def test_videos_without_and_with_csv(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    _video(root / "p01" / "take1.avi", 12)
    _video(root / "take2.avi", 8)
    records, problems = _check(videos.prepare(root))
    assert [(r.clip_id, r.subject, r.kind, r.onset, r.offset, r.frames[-1], r.label3)
            for r in records] == [("p01-take1", "p01", "video", 0, 11, "11", None),
                                  ("take2", "take2", "video", 0, 7, "7", None)]
    assert records[0].fps == pytest.approx(25.0)
    assert problems == set()

    (root / "annotations.csv").write_text(
        "video,subject,onset,apex,offset,emotion\n"
        "p01/take1.avi,p01,2,5,9,happiness\n"
        "p01/take1,p01,0,1,3,surprise\n"
        "take2.avi,p02,1,4,20,Disgust\n"
        "missing.mp4,p03,1,2,3,surprise\n")
    records, problems = _check(videos.prepare(root))
    assert [(r.clip_id, r.source, r.onset, r.apex, r.offset, r.label3) for r in records] == [
        ("p01-take1_2", "p01/take1.avi", 2, 5, 9, "positive"),
        ("p01-take1_0", "p01/take1.avi", 0, 1, 3, "surprise"),
        ("take2", "take2.avi", 1, 4, 7, "negative"),
    ]
    assert problems == {("take2", "window_clamped", "fixed"),
                        ("missing", "row_without_video", "excluded")}
