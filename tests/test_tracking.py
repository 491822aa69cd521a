"""A run's DVCLive logs, its timing kept out of the metrics, and `dvc plots show` drawing the
project's loss plot with one line per fold."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mesti.train.run import run_training
from mesti.train.tracking import LIVE, TIMING, metric_name
from test_training import TINY, tiny_store

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
QUIET = {**os.environ, "DVC_NO_ANALYTICS": "1"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tracking")
    out = tmp / "repo" / "cache" / "train" / "sample"
    metrics = run_training([tiny_store(tmp / "a.zarr", "casme2", 3, 0)], out, TINY,
                           progress=False)
    assert metrics["folds"] == 3 and metrics["seconds"] > 0
    return out


def read_rows(path: Path, delimiter: str = ",") -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_dvclive_metrics_params_and_per_fold_steps(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert "seconds" not in metrics  # wall-clock time would change dvc.lock on every rerun
    assert json.loads((run / TIMING).read_text())["seconds"] > 0
    live = json.loads((run / LIVE / "metrics.json").read_text())
    assert {k: live[k] for k in ("UF1", "UAR", "ACC", "WF1", "folds")} == \
        {k: metrics[k] for k in ("UF1", "UAR", "ACC", "WF1", "folds")}
    params = yaml.safe_load((run / LIVE / "params.yaml").read_text())
    assert params["protocol"] == TINY.protocol and params["epochs"] == TINY.epochs
    epochs = read_rows(run / "epochs.csv")
    folds = sorted({row["fold"] for row in epochs})
    assert len(folds) == 3
    for fold in folds:
        steps = read_rows(run / LIVE / "plots" / "metrics" / f"{metric_name(fold, 'loss')}.tsv",
                          "\t")
        mine = [row for row in epochs if row["fold"] == fold]
        assert [int(s["step"]) for s in steps] == list(range(1, TINY.epochs + 1))
        assert [float(s["loss"]) for s in steps] == pytest.approx(
            [float(row["loss"]) for row in mine])


def test_dvc_plots_show_draws_one_line_per_fold(run: Path) -> None:
    """The project's own train-stage definition and template, in a scratch DVC repository."""
    repo = run.parents[2]
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    subprocess.run([*DVC, "init", "--no-scm", "-q"], cwd=repo, check=True, env=QUIET)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots", dirs_exist_ok=True)
    shown = subprocess.run([*DVC, "plots", "show", "--json", "cache/train/sample/epochs.csv"],
                           cwd=repo, check=True, env=QUIET, capture_output=True, text=True)
    [plot] = json.loads(shown.stdout)["data"]["cache/train/sample/epochs.csv"]
    spec = plot["content"]
    assert spec["encoding"]["color"]["field"] == "fold"
    assert spec["encoding"]["x"]["field"] == "epoch" and spec["encoding"]["y"]["field"] == "loss"
    values = spec["data"]["values"]
    lines = {row["fold"] for row in values}
    assert len(lines) == 3 and len(values) == 3 * TINY.epochs
    assert all(sorted(int(r["epoch"]) for r in values if r["fold"] == fold) ==
               list(range(1, TINY.epochs + 1)) for fold in lines)


def test_what_git_keeps_of_a_run_is_the_same_on_a_rerun(run: Path, tmp_path: Path) -> None:
    """The run files dvc.yaml keeps in git (`cache: false`: metrics, epochs, DVCLive's logs)
    are byte-identical when the same run is made again, so `make repro` on a fresh clone
    leaves `git status` clean; only the untracked timing file differs."""
    again = tmp_path / "cache" / "train" / "sample"
    store = run.parents[3] / "a.zarr"
    run_training([str(store)], again, TINY, progress=False)
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    in_git = [next(iter(entry)) for kind in ("outs", "metrics", "plots")
              for entry in stage[kind] if isinstance(entry, dict)
              and next(iter(entry.values())).get("cache") is False]
    files = [f for name in in_git
             for f in ([Path(name)] if not (run.parents[2] / name).is_dir() else
                       [p.relative_to(run.parents[2])
                        for p in (run.parents[2] / name).rglob("*") if p.is_file()])]
    assert len(files) >= 5, files
    for name in files:
        first, second = run.parents[2] / name, tmp_path / name
        assert first.read_bytes() == second.read_bytes(), name
    assert (run / TIMING).is_file() and TIMING not in {f.name for f in files}
