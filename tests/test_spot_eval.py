"""The MEGC spotting evaluation (pipeline/spotting/evaluation.py) on hand-computed cases."""

import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mesti.pipeline.spotting.evaluation import (
    Counts,
    Interval,
    SpotError,
    evaluate,
    iou,
    read_intervals,
    true_positives,
)

from mesti.cli import main


def test_iou_counts_inclusive_frames() -> None:
    assert iou((1, 5), (6, 10)) == 0.0          # touching: no shared frame
    assert iou((1, 5), (5, 9)) == pytest.approx(1 / 9)  # one shared frame of nine
    assert iou((3, 7), (1, 10)) == pytest.approx(5 / 10)  # nested: 5 of 10
    assert iou((4, 4), (4, 4)) == 1.0


@pytest.mark.parametrize("spots, truths, tp", [
    ([(3, 7)], [(1, 10)], 1),                  # nested, IoU exactly 0.5: a true positive
    ([(3, 6)], [(1, 10)], 0),                  # nested, IoU 0.4
    ([(1, 10), (11, 20)], [(1, 20)], 1),       # split: both halves at 0.5, one truth, one TP
    ([(1, 20)], [(1, 10), (11, 20)], 1),       # merged: one spot finds one of the two truths
    ([(1, 5)], [(6, 10)], 0),                  # touching
    ([(1, 10), (1, 10)], [(1, 10)], 1),        # a duplicate spot is a false positive
])
def test_hand_computed_matches(spots, truths, tp) -> None:
    assert true_positives(spots, truths) == tp


def test_matching_is_maximal_whatever_the_row_order() -> None:
    # s1 = (3, 12) reaches t1 (8/12) and t2 (7/13); s2 = (1, 9) reaches only t1 (9/10).
    # Taking the best truth for s1 first would leave s2 nothing; the maximum matching is 2.
    spots, truths = [(3, 12), (1, 9)], [(1, 10), (6, 15)]
    assert iou((3, 12), (6, 15)) == pytest.approx(7 / 13)
    assert iou((1, 9), (6, 15)) < 0.5
    for s, t in itertools.product(itertools.permutations(spots), itertools.permutations(truths)):
        assert true_positives(list(s), list(t)) == 2


def test_counts_are_summed_over_videos_not_averaged() -> None:
    # Video a: one truth found by one spot. Video b: three truths, one wrong spot.
    # Summed: TP 1, spotted 2, truth 4: P 1/2, R 1/4, F1 1/3 (per-video F1 mean: 1/2).
    truth = {"d": {"a": [Interval("a", 10, 20, "micro")],
                   "b": [Interval("b", 10, 20, "micro"), Interval("b", 40, 50, "micro"),
                         Interval("b", 70, 80, "micro")]}}
    spots = [Interval("a", 10, 19, "micro"), Interval("b", 100, 110, "micro")]
    micro = evaluate(truth, spots)["d"]["micro"]
    assert (micro.tp, micro.spotted, micro.truth) == (1, 2, 4)
    assert micro.precision == 0.5 and micro.recall == 0.25
    assert micro.f1 == pytest.approx(1 / 3)


def test_types_match_separately_and_both_sums_them() -> None:
    truth = {"d": {"v": [Interval("v", 1, 10, "micro"), Interval("v", 30, 90, "macro")]}}
    spots = [Interval("v", 1, 10, "macro"),    # right place, wrong type: FP for macro
             Interval("v", 30, 80, "macro"),   # 51/61: TP macro
             Interval("v", 200, 205, "micro")]
    result = evaluate(truth, spots)["d"]
    assert (result["micro"].tp, result["micro"].spotted, result["micro"].truth) == (0, 1, 1)
    assert (result["macro"].tp, result["macro"].spotted, result["macro"].truth) == (1, 2, 1)
    assert (result["both"].tp, result["both"].spotted, result["both"].truth) == (1, 3, 2)
    assert result["both"].f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_overall_sums_counts_over_datasets() -> None:
    truth = {"x": {"v1": [Interval("v1", 1, 10, "micro")]},
             "y": {"v2": [Interval("v2", 1, 10, "micro"), Interval("v2", 50, 60, "micro")]}}
    spots = [Interval("v1", 1, 10, "micro"), Interval("v2", 50, 60, "micro"),
             Interval("v2", 80, 90, "micro")]
    result = evaluate(truth, spots)
    assert result["overall"]["micro"] == Counts(2, 3, 3)
    assert result["x"]["micro"] == Counts(1, 1, 1) and result["y"]["micro"] == Counts(1, 2, 2)
    assert result["overall"]["macro"] == Counts(0, 0, 0)
    assert result["overall"]["macro"].precision == 0.0 and result["overall"]["macro"].f1 == 0.0


def test_a_video_without_truth_still_counts_its_spots() -> None:
    result = evaluate({"d": {"empty": []}}, [Interval("empty", 5, 9, "micro")])
    assert result["d"]["micro"] == Counts(0, 1, 0)


def test_a_spot_on_an_unknown_video_is_refused() -> None:
    with pytest.raises(SpotError, match="'nowhere'"):
        evaluate({"d": {"v": []}}, [Interval("nowhere", 1, 2, "micro")])


def _manifest(folder: Path) -> Path:
    folder.mkdir()
    (folder / "videos.csv").write_text("dataset,video,subject\nd,v1,s1\nd,v2,s2\n")
    (folder / "intervals.csv").write_text(
        "dataset,video,onset,apex,offset,type\nd,v1,10,14,20,micro\nd,v2,100,130,200,macro\n")
    return folder


def test_spot_eval_command(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "m")
    spots = tmp_path / "spots.csv"
    spots.write_text("video,onset,offset,type,score\nv1,11,20,micro,0.9\nv2,0,40,macro,0.5\n")
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["spot-eval", str(spots), str(manifest), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["d"]["micro"]["tp"] == 1 and scores["d"]["macro"]["fp"] == 1
    assert scores["overall"]["both"]["f1"] == pytest.approx(0.5)
    assert "| d | micro | 1 | 0 | 0 |" in result.output


@pytest.mark.parametrize("content, words", [
    ("video,onset,offset,type,score\nv1,11,x,micro,1\n", "line 2: onset, offset"),
    ("video,onset,offset,type,score\nv1,20,11,micro,1\n", "line 2: offset 11 before onset 20"),
    ("video,onset,offset,type,score\nv1,1,2,mega,1\n", "line 2: type must be micro or macro"),
    ("video,onset,offset\nv1,1,2\n", "no column type, score"),
    ("video,onset,offset,type,score\nv9,1,2,micro,1\n", "'v9' is in none of the datasets"),
])
def test_spot_eval_bad_spots_are_one_line(tmp_path: Path, content: str, words: str) -> None:
    manifest = _manifest(tmp_path / "m")
    spots = tmp_path / "spots.csv"
    spots.write_text(content)
    result = CliRunner().invoke(main, ["spot-eval", str(spots), str(manifest)])
    assert result.exit_code == 1
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_read_intervals_reads_scores(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("video,onset,offset,type,score\nv,1,3,Micro,0.25\n")
    assert read_intervals(path) == [Interval("v", 1, 3, "micro", 0.25)]
