"""A readable experiment view: tracked metrics describe outputs, not runs (a forced re-run
leaves them byte-identical), each score is declared to DVC once, and a training run without
its progress bar says when each fold is done."""

import json
import re
from pathlib import Path

import pytest
import yaml
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.pipeline.runner.run import StageOutputs, run_modalities
from mesti.pipeline.runner.stages import ModalitiesConfig
from mesti.pipeline.stores.read import open_store
from mesti.train.run import run_training
from mesti.train.tracking import LIVE, RunLog
from test_training import TINY, tiny_store

ROOT = Path(__file__).resolve().parents[1]
SERIAL = ClusterOptions(workers=0, progress=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_forced_rerun_leaves_the_tracked_metrics_and_the_store_as_they_were(
        small_stores: Path, tmp_path: Path) -> None:
    out, metrics = tmp_path / "modalities.zarr", tmp_path / "modalities.json"
    outputs = StageOutputs(metrics=metrics)
    first = run_modalities(small_stores / "faces.zarr", out, ModalitiesConfig(), SERIAL, outputs)
    tracked, store = metrics.read_bytes(), tree(out)
    first_run = json.loads(metrics.with_suffix(".timing.json").read_text())
    again = run_modalities(small_stores / "faces.zarr", out, ModalitiesConfig(), SERIAL, outputs)
    assert (first["clips_ok"], first["clips_reused"]) == (4, 0)
    assert (again["clips_ok"], again["clips_reused"]) == (0, 4)  # the run's own counters...
    assert metrics.read_bytes() == tracked  # ...are not in what DVC locks
    assert tree(out) == store
    # the stages' stores carry the consolidated metadata readers use
    assert open_store(out).consolidated and open_store(small_stores / "faces.zarr").consolidated
    second_run = json.loads(metrics.with_suffix(".timing.json").read_text())
    assert (first_run["clips_ok"], second_run["clips_reused"]) == (4, 4)
    assert {"clips_ok", "clips_reused", "clips_pruned"}.isdisjoint(json.loads(tracked))
    assert json.loads(tracked)["clips"] == 4 and json.loads(tracked)["clips_failed"] == 0


def test_each_score_is_declared_once() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = {stage: [next(iter(m)) if isinstance(m, dict) else m
                        for m in spec.get("metrics", [])] for stage, spec in stages.items()}
    for stage in ("train", "train-fdp", "train-mol"):
        assert len(declared[stage]) == 1 and declared[stage][0].endswith("/metrics.json"), \
            declared[stage]
    everything = [path for paths in declared.values() for path in paths]
    assert len(everything) == len(set(everything))
    assert not [path for path in everything if f"/{LIVE}/" in path]


def test_a_run_without_its_bar_prints_one_line_per_fold(tmp_path: Path, capsys) -> None:
    store = tiny_store(tmp_path / "a.zarr", "casme2", 3, 0)
    metrics = run_training([store], tmp_path / "run", TINY, progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train:")]
    assert len(lines) == metrics["folds"] == 3
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(rf"train: fold {number}/3 \(\S+\) done: UF1 \d\.\d{{3}}, "
                            rf"UAR \d\.\d{{3}} on \d+ clip\(s\); \d+ s so far", line), line
    summary = json.loads((tmp_path / "run" / LIVE / "metrics.json").read_text())
    assert summary["UF1"] == pytest.approx(metrics["UF1"])


def test_dvclive_run_is_ended_however_the_block_is_left(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="fold failed"), \
            RunLog(tmp_path, TINY, folds=2, progress=False) as log:
        log.epoch("sub01", {"epoch": 1, "loss": 0.5})
        log.epoch("sub01", {"epoch": 2, "loss": 0.25})
        log.epoch("sub02", {"epoch": 1, "loss": 0.75})
        raise RuntimeError("fold failed")
    assert log.ended and log.steps == {"sub01": 2, "sub02": 1}
    summary = json.loads((tmp_path / LIVE / "metrics.json").read_text())
    assert summary["folds"]["sub01"]["loss"] == 0.25 and summary["folds"]["sub02"]["loss"] == 0.75
