"""Training runs on a tiny modality store: outputs, separation of test subjects, determinism."""

import csv
import json
from pathlib import Path

import mesti.train.folds as train_folds
import numpy as np
import pytest
from click.testing import CliRunner
from mesti.pipeline.stores import write as store
from mesti.train.data import load_clips
from mesti.train.run import TrainConfig, run_training

from mesti.cli import main

TINY = TrainConfig(input_size=32, epochs=2, batch_size=4, lr=1e-3, figure_clips=2)
LABELS = ("negative", "positive", "surprise")


def tiny_store(path: Path, dataset: str, subjects: int, seed: int) -> str:
    """A modality store in the real layout, written by the project's own writer."""
    rng = np.random.default_rng(seed)
    store.open_for_writing(path, "modalities", {"dataset": dataset, "images": ["mesti"]})
    ids = []
    for s in range(subjects):
        for c, label in enumerate(LABELS):
            clip_id = f"s{s}_c{c}"
            image = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
            image[0, 8 * c: 8 * c + 8] = 255  # a class-dependent stripe
            attrs = {"dataset": dataset, "subject": f"s{s}", "clip_id": clip_id,
                     "emotion": label, "label3": label, "label5": None, "n_frames": 10,
                     "lo": [0.0], "hi": [1.0]}
            store.write_clip(path, clip_id, {"images": image}, attrs, f"key-{clip_id}",
                             per_image=("images",))
            ids.append(clip_id)
    store.finalise(path, ids, {})
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("train")
    return [tiny_store(tmp / "a.zarr", "casme2", 4, 0), tiny_store(tmp / "b.zarr", "smic", 3, 1)]


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_loso_outputs_and_determinism(stores, tmp_path: Path) -> None:
    first = run_training(stores, tmp_path / "one", TINY, progress=False)
    second = run_training(stores, tmp_path / "two", TINY, progress=False)
    assert first["folds"] == 7 and first["clips"] == 21  # subjects of two datasets kept apart
    assert (tmp_path / "one" / "predictions.csv").read_text() == \
        (tmp_path / "two" / "predictions.csv").read_text()
    assert {k: first[k] for k in ("UF1", "UAR", "ACC", "WF1")} == \
        {k: second[k] for k in ("UF1", "UAR", "ACC", "WF1")}
    predictions = read_csv(tmp_path / "one" / "predictions.csv")
    expected = {("casme2", f"s{s}_c{c}") for s in range(4) for c in range(3)} | {
        ("smic", f"s{s}_c{c}") for s in range(3) for c in range(3)}
    assert {(p["dataset"], p["clip_id"]) for p in predictions} == expected
    assert len(predictions) == 21
    for p in predictions:
        assert p["subject"] == f"{p['dataset']}/{p['clip_id'].split('_')[0]}"
        assert p["fold"] == p["subject"]
        assert abs(sum(float(p[f"p_{c}"]) for c in LABELS) - 1) < 1e-4
    epochs = read_csv(tmp_path / "one" / "epochs.csv")
    assert len(epochs) == 7 * 2 and all(np.isfinite(float(e["loss"])) for e in epochs)
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion"])) == 21
    assert (tmp_path / "one" / "confusion.png").stat().st_size > 0
    assert (tmp_path / "one" / "attention.png").stat().st_size > 0
    run_training(stores, tmp_path / "three", TrainConfig(**{**TINY.__dict__, "seed": 1}), False)
    assert (tmp_path / "three" / "predictions.csv").read_text() != \
        (tmp_path / "one" / "predictions.csv").read_text()


def test_test_subject_never_reaches_training(stores, tmp_path: Path, monkeypatch) -> None:
    seen = []
    real = train_folds.train_fold

    def spy(model, x, y, train, validation, **kwargs):
        seen.append((train.copy(), validation.copy()))
        return real(model, x, y, train, validation, **kwargs)

    monkeypatch.setattr(train_folds, "train_fold", spy)
    config = TrainConfig(**{**TINY.__dict__, "epochs": 1, "selection": "validation",
                            "validation_fraction": 0.3})
    run_training(stores, tmp_path / "v", config, progress=False)
    table = load_clips(stores, "mesti", 3)
    everyone = set(table.subjects)
    held_out = []
    for train, validation in seen:
        used = set(table.subjects[train]) | set(table.subjects[validation])
        (missing,) = everyone - used  # exactly one subject is kept out of the fold's training
        held_out.append(missing)
        assert len(validation) and not set(table.subjects[validation]) & set(table.subjects[train])
    assert sorted(held_out) == sorted(everyone)  # and each subject exactly once
    predictions = read_csv(tmp_path / "v" / "predictions.csv")
    assert [p["fold"] for p in predictions] == [p["subject"] for p in predictions]
    assert sorted({p["fold"] for p in predictions}) == sorted(held_out)


def test_cross_dataset_and_compare_command(stores, tmp_path: Path) -> None:
    cross = TrainConfig(**{**TINY.__dict__, "protocol": "cross", "train_on": "casme2",
                           "test_on": "smic", "epochs": 1})
    metrics = run_training(stores, tmp_path / "cross", cross, progress=False)
    assert metrics["folds"] == 1 and metrics["clips"] == 9

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  input_size: 32\n  epochs: 1\n  batch_size: 4\n")
    result = CliRunner().invoke(main, ["train", *stores, str(tmp_path / "cmp"), "--params",
                                       str(params), "--modality", "mesti", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| mesti |" in table and (tmp_path / "cmp" / "mesti" / "metrics.json").is_file()
    bad = CliRunner().invoke(main, ["train", *stores, str(tmp_path / "x"), "--params",
                                    str(params), "--modality", "optical_flow"])
    assert bad.exit_code == 2 and "no image 'optical_flow'" in bad.output
