"""Spotting in long videos: the synthetic long videos, the streamed store and the spotter
(pipeline/spotting/), checked against hand computations and the known synthetic schedule."""

import csv
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from mesti.datasets_manifest.manifest import build_long_manifest
from mesti.pipeline.spotting.config import (
    REGIONS,
    LongSampleConfig,
    SeriesConfig,
    SpotterConfig,
    SpottingConfig,
)
from mesti.pipeline.spotting.evaluation import iou
from mesti.pipeline.spotting.peaks import displacement, runs, spot_video, thresholds
from mesti.pipeline.spotting.series import flow_gap, lost_intervals, region_boxes, region_means
from mesti.pipeline.spotting.synthetic import generate_long_sample, schedule

from mesti.cli import main


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        SpottingConfig(spotter={"threshold": 1})
    with pytest.raises(ValueError, match="regions"):
        SpotterConfig(regions=("chin",))
    assert SpottingConfig(series={"k": 3}).series.k == 3


def test_k_defaults_to_half_the_average_micro_expression() -> None:
    assert flow_gap(SeriesConfig(), 30.0) == 5      # 0.35 s * 30 / 2 = 5.25
    assert flow_gap(SeriesConfig(), 200.0) == 35    # SAMM
    assert flow_gap(SeriesConfig(k=7), 200.0) == 7


def test_schedule_keeps_expressions_apart_and_inside_the_video() -> None:
    config = LongSampleConfig(events_per_video=8)
    plan = schedule(900, 30.0, config, np.random.default_rng(3))
    expressions = [p for p in plan if p[0] in ("micro", "macro")]
    assert len(expressions) == 8
    for kind, onset, apex, offset, amplitude, _ in expressions:
        seconds = (offset - onset + 1) / 30
        low, high = config.micro_seconds if kind == "micro" else config.macro_seconds
        assert low - 1 / 30 <= seconds <= high + 1 / 30 and onset < apex < offset
        low, high = (config.micro_amplitude_px if kind == "micro"
                     else config.macro_amplitude_px)
        assert low <= amplitude <= high
    for a, b in itertools.pairwise(expressions):
        assert b[1] - a[3] >= 30  # a second of neutral face between expressions
    blinks = [p for p in plan if p[0] == "blink"]
    assert blinks and all(not (e[1] - 3 <= b[3] and b[1] <= e[3] + 3)
                          for b in blinks for e in expressions)
    assert all(0 <= p[1] <= p[3] < 900 for p in plan)


def test_lost_intervals() -> None:
    numbers = np.arange(10, 20)
    found = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 0], bool)
    assert lost_intervals(numbers, found) == [[10, 10], [13, 14], [18, 19]]
    assert lost_intervals(numbers, np.ones(10, bool)) == []


def test_region_means_against_loops() -> None:
    rng = np.random.default_rng(0)
    field = rng.normal(size=(20, 20, 2))
    boxes = {r: (i, i + 1, i + 5, i + 4) for i, r in enumerate(REGIONS)}
    means = region_means(field, boxes)
    for i, r in enumerate(REGIONS):
        x0, y0, x1, y1 = boxes[r]
        values = [field[y, x] for y in range(y0, y1) for x in range(x0, x1)]
        assert np.allclose(means[i], np.mean(values, axis=0))


def test_region_boxes_sit_where_the_face_parts_are() -> None:
    from mesti.pipeline.faces.landmarks68 import REGIONS_68  # noqa: F401 (the convention)

    points = np.zeros((68, 2))
    points[17:22] = [(12 + i, 20) for i in range(5)]   # left brow
    points[22:27] = [(34 + i, 20) for i in range(5)]   # right brow
    points[36:42] = [(14 + i, 26) for i in range(6)]   # left eye
    points[42:48] = [(36 + i, 26) for i in range(6)]   # right eye
    points[27:36] = [(32, 26 + i) for i in range(9)]   # nose
    points[48:68] = [(22 + i, 46) for i in range(20)]  # mouth, corners 48 and 54
    boxes = region_boxes(points, 64)
    centre = {r: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for r, b in boxes.items()}
    assert centre["brow_left"][1] < centre["eye_left"][1] < centre["mouth_left"][1]
    assert centre["brow_left"][0] < centre["brow_right"][0]
    assert centre["mouth_left"][0] < centre["mouth_right"][0]
    assert all(0 <= b[0] < b[2] <= 64 and 0 <= b[1] < b[3] <= 64 for b in boxes.values())


def test_displacement_sums_k_frame_flows() -> None:
    rng = np.random.default_rng(1)
    flow = rng.normal(size=(30, 2, 2))
    flow[3] = np.nan
    out = displacement(flow, 4, 3)
    clean = np.nan_to_num(flow)
    for t in range(8, 30):
        assert np.allclose(out[t], clean[t] + clean[t - 4] + clean[t - 8])
    assert np.all(out[:8] == 0)
    assert np.allclose(displacement(flow, 4, 1), clean)


def test_thresholds_and_runs_by_hand() -> None:
    series = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    # median 3, |x - 3| = 2, 1, 0, 1, 97 -> MAD 1; 3 + 2 * 1.4826 * 1
    assert thresholds(series, np.ones(5, bool), 2.0)[0] == pytest.approx(3 + 2 * 1.4826)
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1], bool)
    assert runs(mask, 0) == [(1, 2), (5, 5), (10, 11)]
    assert runs(mask, 2) == [(1, 5), (10, 11)]


def _bump(length: int) -> np.ndarray:
    t = np.linspace(0, np.pi, length)
    return np.sin(t) ** 2


def test_spotter_finds_injected_events_and_ignores_noise() -> None:
    """Positions from a sin^2 profile, k-frame differences as the flow; noise elsewhere."""
    rng = np.random.default_rng(5)
    fps, k, n = 30.0, 5, 900
    position = np.zeros((n, len(REGIONS), 2))
    events = [("micro", 100, 111, 1.0), ("macro", 300, 359, 3.0), ("micro", 600, 608, 1.0)]
    brow = REGIONS.index("brow_left")
    for _, onset, offset, amplitude in events:
        position[onset:offset + 1, brow, 1] += amplitude * _bump(offset - onset + 1)
    flow = np.zeros_like(position)
    flow[k:] = position[k:] - position[:-k]
    flow += rng.normal(0, 0.03, size=flow.shape)
    flow[:k] = np.nan
    found = np.ones(n, bool)
    spots, per_scale = spot_video(flow, found, np.arange(1, n + 1), fps, k, SpotterConfig())
    assert per_scale["micro"][0].shape == (n, 4)
    for kind, onset, offset, _ in events:
        truth = (onset + 1, offset + 1)
        hits = [s for s in spots if s[2] == kind and iou((s[0], s[1]), truth) >= 0.5]
        assert hits, (kind, truth, spots)
    assert len(spots) == len(events), spots


@pytest.fixture(scope="module")
def tiny_long(tmp_path_factory) -> tuple[Path, Path]:
    """One 3-second synthetic long video, and its long-video manifest."""
    root = tmp_path_factory.mktemp("long")
    config = LongSampleConfig(videos=1, seconds=3.0, events_per_video=2, head_turns=0,
                              blinks_per_minute=0.0)
    generate_long_sample(root / "raw", config)
    build_long_manifest("casme2_lv", root / "raw", root / "manifest")
    return root / "raw", root / "manifest"


def test_long_sample_reads_back_through_the_casme2_lv_recipe(tiny_long) -> None:
    raw, manifest = tiny_long
    truth = [e for e in json.loads((raw / "truth.json").read_text())
             if e["kind"] in ("micro", "macro")]
    with (manifest / "intervals.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["video"], int(r["onset"]), int(r["offset"]), r["type"]) for r in rows] == \
        [(e["video"], e["onset"], e["offset"], e["kind"]) for e in truth]
    frames = sorted((raw / "rawpic").glob("s15/15_0101*/img*.jpg"))
    assert len(frames) == 90 and cv2.imread(str(frames[0])).shape == (240, 320, 3)


def test_store_streams_chunks_and_records_the_lost_face(tiny_long, tmp_path: Path) -> None:
    raw, _manifest = tiny_long
    folder = next((raw / "rawpic" / "s15").iterdir())
    blank = np.full((240, 320, 3), 128, np.uint8)
    copy = tmp_path / "raw"
    import shutil

    shutil.copytree(raw, copy)
    for number in range(40, 50):  # ten frames without a face
        cv2.imwrite(str(copy / "rawpic" / "s15" / folder.name / f"img{number}.jpg"), blank)
    build_long_manifest("casme2_lv", copy, tmp_path / "manifest")
    store = tmp_path / "store.zarr"
    result = CliRunner().invoke(main, ["spot-series", str(tmp_path / "manifest"), str(store),
                                       "--params", str(_params(tmp_path))])
    assert result.exit_code == 0, result.output
    group = zarr.open_group(str(store), mode="r")["15_0101"]
    assert group.attrs["lost"] == [[40, 49]]
    found = np.asarray(group["found"][:])
    assert found.sum() == 80 and not found[39:49].any()
    assert group["flow"].chunks == (16, len(REGIONS), 2) and group["face"].shape == (90, 64, 64)
    flow = np.asarray(group["flow"][:])
    k = group.attrs["k"]
    assert np.isnan(flow[:k]).all() and np.isfinite(flow[k:39]).all()
    assert np.isnan(flow[39:49 + k]).all()  # t or t - k without a face
    assert np.isfinite(np.asarray(group["strain"][60:])).all()
    # The aligned track: the nose stays put across frames (one transform, stabilised).
    faces = np.asarray(group["face"][:]).astype(float)
    assert np.abs(faces[20] - faces[30]).mean() < 12


def _params(folder: Path) -> Path:
    path = folder / "params.yaml"
    path.write_text("spotting:\n  series:\n    chunk_frames: 16\n")
    return path


def test_spot_series_refuses_a_folder_that_is_not_a_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["spot-series", str(tmp_path), str(tmp_path / "s.zarr")])
    assert result.exit_code == 2 and "not a long-video manifest" in result.output
    assert len(result.output.strip().splitlines()) <= 2  # the default-params note, the error


def test_spotting_imports_without_dask_and_the_evaluation_without_the_pipeline() -> None:
    from test_dependency_rules import import_with_blocked

    modules = ("config", "evaluation", "figures", "peaks", "series", "stage", "synthetic")
    code = "import " + ", ".join(f"mesti.pipeline.spotting.{m}" for m in modules)
    result = import_with_blocked(code, ["dask", "distributed", "torch"])
    assert result.returncode == 0, result.stderr[-2000:]
    result = import_with_blocked(
        "import mesti.pipeline.spotting.evaluation",
        ["numpy", "cv2", "mediapipe", "numba", "dask", "distributed", "torch", "pandas", "zarr"])
    assert result.returncode == 0, result.stderr[-2000:]


def test_spot_writes_spots_scores_and_figures(tiny_long, tmp_path: Path) -> None:
    _, manifest = tiny_long
    runner = CliRunner()
    stores = [tmp_path / "a.zarr", tmp_path / "b.zarr"]
    for store in stores:
        result = runner.invoke(main, ["spot-series", str(manifest), str(store),
                                      "--metrics", str(tmp_path / "series.json")])
        assert result.exit_code == 0, result.output
    first, second = (zarr.open_group(str(s), mode="r")["15_0101"] for s in stores)
    assert np.array_equal(np.asarray(first["flow"][:]), np.asarray(second["flow"][:]),
                          equal_nan=True)  # a rerun gives the same series
    metrics = json.loads((tmp_path / "series.json").read_text())
    assert metrics == {"videos": 1, "videos_ok": 1, "videos_failed": 0, "frames": 90,
                       "frames_with_face": 90}
    assert (tmp_path / "series.timing.json").is_file()  # seconds stay out of the metrics
    out = tmp_path / "run"
    result = runner.invoke(main, ["spot", str(stores[0]), str(out), "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    with (out / "spots.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["video", "onset", "offset", "type", "score"]
        rows = list(reader)
    scores = json.loads((out / "metrics.json").read_text())["evaluation"]
    assert scores["overall"]["both"]["spotted"] == len(rows)
    with (manifest / "intervals.csv").open() as handle:
        assert scores["casme2_lv"]["both"]["truth"] == len(list(csv.DictReader(handle))) >= 1
    assert (out / "figures" / "15_0101.png").stat().st_size > 10_000


def test_learned_labels_training_and_folds(monkeypatch) -> None:
    from mesti.pipeline.spotting import learned
    from mesti.pipeline.spotting.config import LearnedConfig

    numbers = np.arange(10, 30)
    labels = learned.frame_labels(numbers, [(12, 14, "micro"), (20, 25, "macro")])
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0]
    # Separable classes: the softmax regression learns them.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    x = np.eye(3)[y] * 3 + rng.normal(0, 0.3, (300, 3))
    model = learned.train(x, y, LearnedConfig())
    assert (learned.predict(x, model).argmax(axis=1) == y).mean() > 0.97
    # LOSO: each subject is spotted by a model that never saw its frames.
    seen = []
    real_train = learned.train
    monkeypatch.setattr(learned, "train",
                        lambda x, y, config: seen.append(len(x)) or real_train(x, y, config))
    videos = {}
    for i, (subject, n) in enumerate((("a", 40), ("b", 50), ("c", 60))):
        flow = rng.normal(0, 0.05, (n, len(REGIONS), 2))
        videos[f"v{i}"] = {"flow": flow, "found": np.ones(n, bool), "numbers": np.arange(n),
                           "fps": 30.0, "k": 2, "subject": subject,
                           "intervals": [(10, 14, "micro")]}
    _, folds = learned.loso(videos, LearnedConfig(epochs=5))
    assert seen == [50 + 60, 40 + 60, 40 + 50]
    assert set(folds) == {"a", "b", "c"}


def test_learned_spotting_needs_a_manifest(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    store.mkdir()
    result = CliRunner().invoke(main, ["spot", str(store), str(tmp_path / "out"), "--learned"])
    assert result.exit_code == 2 and "--manifest" in result.output
