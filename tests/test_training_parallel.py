"""Folds as tasks: a run on Dask workers writes the bytes a run in one process writes, a
killed fold task is re-run alone, and a run stopped part-way reuses the folds it finished."""

import functools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import faults
import mesti.train.folds as train_folds
import mesti.train.run as train_run
import pytest
import torch
from mesti.pipeline.runner.cluster import ClusterOptions
from mesti.train.folds import PARTIAL, fold_device, maps_wanted
from mesti.train.protocols import Fold
from mesti.train.run import TrainConfig, run_training
from mesti.train.tracking import TIMING
from test_training import tiny_store

MESTI = str(Path(sys.executable).parent / "mesti")
PARAMS = "train:\n  input_size: 16\n  epochs: 2\n  batch_size: 4\n  lr: 0.001\n" \
         "  figure_clips: 2\n"
TINY = TrainConfig(input_size=16, epochs=2, batch_size=4, lr=1e-3, figure_clips=2)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("parallel")
    return [tiny_store(tmp / "a.zarr", "casme2", 2, 0), tiny_store(tmp / "b.zarr", "smic", 2, 1)]


def files(run: Path) -> dict[str, bytes]:
    """Every file of a run folder but its wall-clock timing, by relative path."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != TIMING}


def assert_same_run(first: Path, second: Path) -> None:
    one, two = files(first), files(second)
    assert sorted(one) == sorted(two)
    different = [name for name in one if one[name] != two[name]]
    assert not different, different
    assert "weights/fold_003.pt" in one and "predictions.csv" in one and "attention.png" in one
    assert not (first / PARTIAL).exists() and not (second / PARTIAL).exists()


def test_workers_write_the_bytes_of_one_process(stores, tmp_path: Path) -> None:
    """Through the command, as a user runs it (the CPU kernels pinned before torch)."""
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    for name, workers in (("serial", "0"), ("parallel", "2")):
        done = subprocess.run([MESTI, "train", *stores, str(tmp_path / name), "--params",
                               str(params), "--workers", workers, "--no-progress"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "serial", tmp_path / "parallel")
    config = (tmp_path / "parallel" / "config.json").read_text()
    assert '"pinned": true' in config  # the workers' kernels were pinned, as the parent's


def test_a_killed_fold_task_reruns_alone(stores, tmp_path: Path, monkeypatch) -> None:
    clean = run_training(stores, tmp_path / "clean", TINY, progress=False,
                         cluster=ClusterOptions(workers=2, progress=False))
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setattr(train_folds, "FOLD_TASK", functools.partial(
        faults.kill_fold_once, marker_dir=str(markers), victim=1))
    killed = run_training(stores, tmp_path / "killed", TINY, progress=False,
                          cluster=ClusterOptions(workers=2, progress=False))
    attempts = {p.stem: len(p.read_text().split()) for p in markers.iterdir()}
    assert attempts == {"fold_000": 1, "fold_001": 2, "fold_002": 1, "fold_003": 1}
    assert_same_run(tmp_path / "clean", tmp_path / "killed")
    assert killed["UF1"] == clean["UF1"]


def test_a_fold_that_kills_every_worker_is_one_line(stores, tmp_path: Path,
                                                    monkeypatch) -> None:
    import dask
    from mesti.train.cluster import FoldLost

    from mesti.cli import user_error

    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setattr(train_folds, "FOLD_TASK", functools.partial(
        faults.kill_fold_once, marker_dir=str(markers), victim=0, always=True))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            pytest.raises(FoldLost) as lost:
        run_training(stores, tmp_path / "run", TINY, progress=False,
                     cluster=ClusterOptions(workers=2, progress=False))
    message = user_error(lost.value).format_message()
    assert message.startswith("fold casme2/s0: its worker died on every attempt")
    assert "run again" in message and "\n" not in message


def test_a_stopped_run_resumes_without_recomputing(stores, tmp_path: Path, monkeypatch) -> None:
    run_training(stores, tmp_path / "clean", TINY, progress=False)
    trained = []
    real = train_folds.fit_fold

    def counted(config, x, y, fold, number, *args):
        trained.append(number)
        if number == 2 and len(trained) == 3:  # the parent dies after two folds
            raise KeyboardInterrupt
        return real(config, x, y, fold, number, *args)

    monkeypatch.setattr(train_folds, "fit_fold", counted)
    with pytest.raises(KeyboardInterrupt):
        run_training(stores, tmp_path / "resumed", TINY, progress=False)
    kept = sorted(p.name for p in (tmp_path / "resumed" / PARTIAL).rglob("fold_*.pt"))
    assert kept == ["fold_000.pt", "fold_001.pt"]
    trained.clear()
    run_training(stores, tmp_path / "resumed", TINY, progress=False)
    assert trained == [2, 3]  # the two finished folds were not trained again
    assert_same_run(tmp_path / "clean", tmp_path / "resumed")


def test_kept_folds_of_other_settings_are_not_reused(stores, tmp_path: Path,
                                                     monkeypatch) -> None:
    trained = []
    real = train_folds.fit_fold

    def counted(config, x, y, fold, number, *args):
        trained.append(number)
        if number == 2 and config.seed == 0:
            raise KeyboardInterrupt
        return real(config, x, y, fold, number, *args)

    monkeypatch.setattr(train_folds, "fit_fold", counted)
    with pytest.raises(KeyboardInterrupt):
        run_training(stores, tmp_path / "run", TINY, progress=False)
    assert len(list((tmp_path / "run" / PARTIAL).rglob("fold_*.pt"))) == 2
    trained.clear()
    run_training(stores, tmp_path / "run", TrainConfig(**{**TINY.__dict__, "seed": 1}),
                 progress=False)
    assert trained == [0, 1, 2, 3] and not (tmp_path / "run" / PARTIAL).exists()


def test_a_fold_task_pins_its_worker_before_torch_starts(stores, tmp_path: Path) -> None:
    """A worker started without the pinning variables (one you start yourself) still runs
    the fold on pinned kernels: the task sets them before it imports torch."""
    from mesti.train.folds import load_data, make_task
    from mesti.train.run import _folds

    table, _ = load_data(stores, TINY)
    fold = _folds(table, TINY)[0]
    task = make_task(stores, TINY, None, 0, fold, 3, "cpu", tmp_path, 0)
    (tmp_path / "task.pickle").write_bytes(pickle.dumps(task))
    code = ("import os, pickle, sys\n"
            "assert 'ATEN_CPU_CAPABILITY' not in os.environ and 'MKL_CBWR' not in os.environ\n"
            "task = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            "assert 'torch' not in sys.modules\n"
            "from mesti.train.cluster import run_fold_task\n"
            "print(run_fold_task(task)['cpu'])\n")
    environ = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY",
                                                                "MKL_CBWR")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "task.pickle")],
                          capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'pinned': True" in done.stdout and "'threads': 1" in done.stdout, done.stdout
    assert (tmp_path / "fold_000.pt").is_file()


def test_cuda_folds_go_round_robin_over_devices() -> None:
    assert [fold_device("cuda", n, 3) for n in range(5)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert fold_device("cuda", 4, 1) == "cuda" and fold_device("cpu", 4, 8) == "cpu"


def test_attention_maps_come_from_the_first_folds() -> None:
    folds = [Fold(str(i), torch.arange(2).numpy(), torch.arange(n).numpy(),
                  torch.arange(0).numpy()) for i, n in enumerate((1, 3, 2))]
    assert maps_wanted(folds, 2) == [1, 1, 0]
    assert maps_wanted(folds, 10) == [1, 3, 2]


def test_run_imports_no_dask_in_train() -> None:
    """The runner alone imports Dask; a fold task is unpickled before torch starts."""
    code = ("import sys\nfor n in ['dask', 'distributed']: sys.modules[n] = None\n"
            "import mesti.train.run, mesti.train.folds\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    code = ("import sys\nsys.modules['torch'] = None\nimport mesti.train.cluster\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert train_run.run_training is run_training
