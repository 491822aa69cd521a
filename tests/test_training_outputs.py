"""Per-dataset and multi-seed metrics, saved weights and ``mesti predict``, expansion, and the
refusals of runs that would not mean what they say."""

import csv
import json
from pathlib import Path

import mesti.train.folds as train_folds
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mesti.train.data import EXPANSION, ClipTable, cross_dataset_labels, expand
from mesti.train.run import TrainConfig, run_training
from sklearn.metrics import accuracy_score, f1_score, recall_score
from test_training import tiny_store

from mesti.cli import main

TINY = TrainConfig(input_size=16, epochs=1, batch_size=4, lr=1e-3, figure_clips=1)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("outputs")
    return [tiny_store(tmp / "a.zarr", "casme2", 3, 0), tiny_store(tmp / "b.zarr", "smic", 2, 1)]


def sklearn_scores(rows: list[dict]) -> dict[str, float]:
    truth = [r["truth"] for r in rows]
    predicted = [r["prediction"] for r in rows]
    labels = sorted(set(truth))  # classes absent from the truth are left out (MEGC)
    return {"UF1": f1_score(truth, predicted, labels=labels, average="macro", zero_division=0),
            "UAR": recall_score(truth, predicted, labels=labels, average="macro",
                                zero_division=0),
            "ACC": accuracy_score(truth, predicted)}


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_per_dataset_and_multi_seed_metrics_equal_sklearn(stores, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY.__dict__, "seeds": (0, 1, 2)})
    metrics = run_training(stores, tmp_path, config, progress=False)
    per_seed = []
    for seed in (0, 1, 2):
        folder = tmp_path / f"seed_{seed}"
        rows = read_csv(folder / "predictions.csv")
        seed_metrics = json.loads((folder / "metrics.json").read_text())
        expected = sklearn_scores(rows)
        for key in ("UF1", "UAR", "ACC"):
            assert seed_metrics[key] == pytest.approx(expected[key], abs=1e-12)
        for dataset in ("casme2", "smic"):
            mine = [r for r in rows if r["dataset"] == dataset]
            got = seed_metrics["per_dataset"][dataset]
            assert got["clips"] == len(mine)
            for key, value in sklearn_scores(mine).items():
                assert got[key] == pytest.approx(value, abs=1e-12)
        per_seed.append(expected)
        assert json.loads((folder / "config.json").read_text())["config"]["seed"] == seed
    for key in ("UF1", "UAR", "ACC"):
        values = [p[key] for p in per_seed]
        assert metrics[key] == pytest.approx(np.mean(values), abs=1e-12)
        assert metrics["std"][key] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert [r[key] for r in metrics["per_seed"]] == pytest.approx(values, abs=1e-12)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["seeds"] == [0, 1, 2] and on_disk["clip_list"] == "none"
    report = (tmp_path / "report.md").read_text()
    assert "| casme2 | 9 |" in report and "| smic | 6 |" in report and "| 2 |" in report


def test_weights_reproduce_predictions_byte_for_byte(stores, tmp_path: Path) -> None:
    run_training(stores, tmp_path / "one", TINY, progress=False)
    run_training(stores, tmp_path / "two", TINY, progress=False)
    index = json.loads((tmp_path / "one" / "weights" / "folds.json").read_text())
    assert len(index) == 5
    for fold in index:  # plain state_dicts, and the same bits from two runs on CPU
        first = torch.load(tmp_path / "one" / "weights" / fold["file"], weights_only=True)
        second = torch.load(tmp_path / "two" / "weights" / fold["file"], weights_only=True)
        assert all(torch.equal(first[k], second[k]) for k in first)
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["determinism"]["cudnn_deterministic"] is True
    assert config["determinism"]["CUBLAS_WORKSPACE_CONFIG"]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run

    result = CliRunner().invoke(main, ["predict", *stores, str(tmp_path / "one"), "--out",
                                       str(tmp_path / "again.csv")])
    assert result.exit_code == 0, result.output
    assert "identical to" in result.output
    assert (tmp_path / "again.csv").read_bytes() == \
        (tmp_path / "one" / "predictions.csv").read_bytes()
    # a damaged weight is caught: predictions then differ
    state = torch.load(tmp_path / "one" / "weights" / index[0]["file"], weights_only=True)
    state["head.bias"][0] += 5.0  # a shift of one class (a shift of all cancels)
    torch.save(state, tmp_path / "one" / "weights" / index[0]["file"])
    result = CliRunner().invoke(main, ["predict", *stores, str(tmp_path / "one")])
    assert result.exit_code == 0 and "DIFFERENT" in result.output


def test_expand_multiplies_the_training_set(stores, tmp_path: Path, monkeypatch) -> None:
    x = torch.randn(3, 3, 16, 16)
    copies = expand(x)
    assert copies.shape == (EXPANSION * 3, 3, 16, 16) and EXPANSION == 10
    torch.testing.assert_close(copies[2 * 3:3 * 3], x)  # angle 0, unflipped: the originals
    torch.testing.assert_close(copies[7 * 3:8 * 3], x.flip(-1))  # angle 0, flipped
    seen = []
    real = train_folds.train_fold

    def spy(model, x, y, train, validation, **kwargs):
        seen.append((len(x), len(train), x.augment))
        return real(model, x, y, train, validation, **kwargs)

    monkeypatch.setattr(train_folds, "train_fold", spy)
    config = TrainConfig(**{**TINY.__dict__, "protocol": "holdout", "augment": "expand",
                            "holdout_fraction": 0.2})
    metrics = run_training(stores, tmp_path, config, progress=False)
    (total, trained, online), = seen
    tested = metrics["clips"]
    assert trained == EXPANSION * (15 - tested) and total == 15 + trained and not online
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["augment"] == {"mode": "expand", "copies_per_clip": 10}
    assert metrics["augment"] == "expand" and metrics["evaluation"] == "subject-dependent"


def test_refusals(stores, tmp_path: Path) -> None:
    table = ClipTable(np.zeros((4, 2, 2, 3), np.uint8), np.array([0, 1, 2, 3]),
                      ["anger", "disgust", "other", "others"], np.array(list("abcd")),
                      np.array(["x/1", "x/1", "y/1", "y/2"]),
                      np.array(["samm", "casme2", "samm", "casme2"]))
    with pytest.raises(ValueError, match="5 classes across datasets"):
        cross_dataset_labels(table, 5, "none")
    union = cross_dataset_labels(table, 5, "union")
    assert union.classes == ["anger", "disgust", "other"]
    assert [union.classes[i] for i in union.labels] == ["anger", "disgust", "other", "other"]
    shared = cross_dataset_labels(table, 5, "shared")
    assert shared.classes == ["other"] and list(shared.clip_ids) == ["c", "d"]
    single = tiny_store(tmp_path / "one.zarr", "casme2", 1, 3)
    with pytest.raises(ValueError, match="fold casme2/s0 has no training clip"):
        run_training([single], tmp_path / "run", TINY, progress=False)
    with pytest.raises(ValueError, match="clip_list"):
        TrainConfig(clip_list="megc2018")
    with pytest.raises(ValueError, match="switches"):
        TrainConfig(switches={"gradient": True})
