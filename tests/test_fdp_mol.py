"""FDP and MOL: shapes, memorisation, ablation switches, the correlation layer against a direct
loop, the dynamic-image target against pairwise sums, per-video aggregation, and end-to-end
runs on a tiny sequences store."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mesti.pipeline.stores.read import StoreError, open_store
from mesti.train.compare import runs_table
from mesti.train.inputs import (
    FDPConfig,
    MOLConfig,
    MOLInputs,
    load_inputs,
    load_sequences,
    scored_rows,
    video_means,
)
from mesti.train.loop import predict
from mesti.train.losses import fdp_loss, mol_loss
from mesti.train.models import fdp, mol
from mesti.train.models.meganet import build as build_meganet
from mesti.train.run import TrainConfig, run_training
from sequences_fake import sequences_store

TINY_FDP = {"preset": "small", "size": 16, "drop_path": 0.0}  # no stochastic depth: memorises
TINY_MOL = {"preset": "small", "size": 32, "neighbours": 3}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def direct_correlation(a: np.ndarray, b: np.ndarray, d: int, stride: int = 1) -> np.ndarray:
    """The FlowNet correlation by its definition, one output value at a time."""
    n, c, h, w = a.shape
    steps = range(-d, d + 1, stride)
    out = np.zeros((n, len(steps) ** 2, h, w))
    for i in range(n):
        for k, (dy, dx) in enumerate((dy, dx) for dy in steps for dx in steps):
            for y in range(h):
                for x in range(w):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        out[i, k, y, x] = sum(a[i, ch, y, x] * b[i, ch, y + dy, x + dx]
                                              for ch in range(c)) / c
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_correlation_equals_the_direct_loop(device: str) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(2, 3, 5, 6))
    for d, stride in ((1, 1), (2, 1), (4, 2), (20, 2)):  # (20, 2): the published range
        got = mol.correlation(torch.tensor(a, device=device), torch.tensor(b, device=device), d,
                              stride)
        assert got.device.type == device and got.shape[1] == (2 * (d // stride) + 1) ** 2
        np.testing.assert_allclose(got.cpu().numpy(), direct_correlation(a, b, d, stride),
                                   atol=1e-12)


def test_dynamic_image_target_is_on_the_published_uint8_scale() -> None:
    """The target against an independent computation: tests/test_fdp_published.py."""
    target = fdp.dynamic_image_target(torch.rand(3, 8, 6, 6))
    assert float(target.amin()) == 0.0 and float(target.amax()) >= 254 / 255
    torch.testing.assert_close(target * 255, (target * 255).round())  # whole uint8 steps
    still = fdp.dynamic_image_target(torch.ones(1, 8, 4, 4))
    assert torch.equal(still, torch.zeros_like(still))  # a flat image maps to 0, no division


def test_forward_shapes() -> None:
    assert build_meganet("meganet", 3, stem_width=8)(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with torch.no_grad():
        out = fdp.build("fdp", 5, **TINY_FDP)(torch.randn(2, 8, 16, 16))
    assert out["logits"].shape == (2, 5) and out["reconstruction"].shape == (2, 1, 16, 16)
    assert 0 <= float(out["reconstruction"].min()) <= float(out["reconstruction"].max()) <= 1
    out = mol.build("mol", 3, **TINY_MOL)(torch.randn(2, 8, 32, 32))
    assert out["logits"].shape == (2, 3) and out["flow"].shape == (2, 7, 2, 32, 32)
    assert out["landmarks"].shape == (2, 7, 68, 2)  # frames 1..7, the pairs' second frames
    with pytest.raises(ValueError, match="built for 8 frames"):
        fdp.build("fdp", 3, **TINY_FDP)(torch.randn(2, 6, 16, 16))


def fdp_batch() -> dict:
    """Smooth random frames: their dynamic image is a smooth image the decoder can learn."""
    torch.manual_seed(0)
    frames = F.interpolate(torch.rand(6, 8, 4, 4), size=(16, 16), mode="bilinear") * 2 - 1
    return {"input": frames, "label": torch.tensor([0, 1, 2, 0, 1, 2]),
            "dynamic_image": fdp.dynamic_image_target(frames)}


def mol_batch() -> dict:
    torch.manual_seed(0)
    return {"input": torch.rand(4, 8, 32, 32) * 2 - 1, "label": torch.tensor([0, 1, 2, 1]),
            "flow": torch.randn(4, 7, 2, 32, 32), "landmarks": torch.rand(4, 8, 68, 2) * 32,
            "pupil_distance": torch.full((4, 8), 5.0)}


def fdp_step_loss(model, batch):
    return fdp_loss(model(batch["input"]), batch["label"], batch["dynamic_image"], 100.0)


def mol_step_loss(model, batch):
    return mol_loss(model(batch["input"]), batch["label"], batch["flow"], batch["landmarks"],
                    batch["pupil_distance"], 0.5, 0.5)


def train_steps(model, batch, loss_of, steps: int, lr: float = 3e-3) -> list[float]:
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss = loss_of(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("name", ["fdp", "mol"])
def test_loss_decreases_on_a_batch_it_can_memorise(name: str) -> None:
    torch.manual_seed(0)
    if name == "fdp":
        model, batch, loss_of = fdp.build("fdp", 3, **TINY_FDP), fdp_batch(), fdp_step_loss
    else:
        # no dropout: memorising is the point; the published loss sums over the batch and
        # its landmark term (raw pixel coordinates) falls slowest, hence more steps
        model, batch, loss_of = mol.build("mol", 3, dropout=0.0, **TINY_MOL), mol_batch(), \
            mol_step_loss
    losses = train_steps(model, batch, loss_of, 80,
                         lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    assert (model(batch["input"])["logits"].argmax(1) == batch["label"]).all()


@pytest.mark.parametrize("name,full,ablated", [
    ("fdp", "fdp", "fdp_no_reconstruction"),
    ("mol", "mol", "mol_no_flow"),
    ("mol", "mol", "mol_no_landmarks"),
])
def test_each_ablation_switch_changes_the_computation(name, full, ablated) -> None:
    module, tiny, batch, loss_of = (fdp, TINY_FDP, fdp_batch(), fdp_step_loss) if name == "fdp" \
        else (mol, TINY_MOL, mol_batch(), mol_step_loss)
    torch.manual_seed(1)
    a = module.build(full, 3, **tiny)
    torch.manual_seed(1)
    b = module.build(ablated, 3, **tiny)
    assert n_params(b) < n_params(a)
    dropped = set(a(batch["input"])) - set(b(batch["input"]))
    assert dropped == {"reconstruction" if name == "fdp" else ablated.split("_no_")[1]}
    train_steps(a, batch, loss_of, 2)
    train_steps(b, batch, loss_of, 2)
    a.eval(), b.eval()
    with torch.no_grad():  # the dropped head's loss no longer shapes the shared features
        assert not torch.allclose(a(batch["input"])["logits"], b(batch["input"])["logits"])


def test_video_means_count_each_video_once() -> None:
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.6, 0.4]])
    means = video_means(p, np.array([0, 0, 1, 2, 2]), 3)
    np.testing.assert_allclose(means, [[0.8, 0.2], [0.2, 0.8], [0.5, 0.5]])
    with pytest.raises(ValueError, match="without a sample"):
        video_means(p, np.array([0, 0, 0, 2, 2]), 3)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("sequences")
    return [sequences_store(tmp / "a.zarr", "casme2", 3, 0),
            sequences_store(tmp / "b.zarr", "samm", 2, 1, flow=False)]


def test_reader_gives_a_clips_sequence_arrays(stores) -> None:
    store = open_store(stores[0])
    arrays = store.sequence("s0_c2")
    assert arrays["frames"].shape == (3, 8, 36, 36) and arrays["frames"].dtype == np.uint8
    assert arrays["flow"].shape == (3, 7, 36, 36, 2) and arrays["landmarks"].shape == (3, 8, 68, 2)
    assert "flow" not in open_store(stores[1]).sequence("s0_c0")
    with pytest.raises(KeyError, match="no clip"):
        store.sequence("nope")


def test_mol_inputs_phases_crops_and_targets(stores) -> None:
    config = MOLConfig(crop=32, size=16, train_crops=2)
    table, inputs = load_inputs(stores[:1], "mol", 3, config=config)
    assert isinstance(inputs, MOLInputs) and len(inputs) == 9
    test = inputs.samples(train=False)
    assert len(test) == 3 * (1 + 2 + 3) and len(inputs.samples(train=True)) == 2 * len(test)
    (clip_id,) = [i for i, c in enumerate(table.clip_ids) if c == "s1_c2"]
    rows = np.array([[clip_id, 2]])
    batch = inputs.batch(rows, False, None)
    raw = open_store(stores[0]).sequence("s1_c2")
    centre = raw["frames"][2, :, 2:34, 2:34].astype(np.float32) / 127.5 - 1  # (36 - 32) / 2
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(centre), 2)
    torch.testing.assert_close(batch["input"][0], expected)
    torch.testing.assert_close(batch["landmarks"][0],
                               torch.from_numpy((raw["landmarks"][2] - 2) / 2))
    assert torch.allclose(batch["flow"][0, :, 0], torch.full((7, 16, 16), 2 / 2))  # u = class
    assert batch["pupil_distance"][0, 0] == pytest.approx(36 / 3 / 2)
    with pytest.raises(ValueError, match="no flow"):
        load_inputs(stores, "mol", 3, config=config)


def test_mol_training_crops_move_frames_flow_and_landmarks_together() -> None:
    side, crop, points = 16, 10, 68
    y, x = np.mgrid[:side, :side]
    frames = np.broadcast_to((16 * y + x).astype(np.uint8), (2, 8, side, side)).copy()
    flow = np.broadcast_to(np.stack([x, y], -1).astype(np.float16), (2, 7, side, side, 2))
    landmarks = np.random.default_rng(0).uniform(0, side, (2, 8, points, 2)).astype(np.float32)
    clip = {"frames": frames, "flow": flow.copy(), "landmarks": landmarks,
            "pupil_distance": np.full((2, 8), 5.0, np.float32)}
    inputs = MOLInputs([clip], torch.tensor([1]), MOLConfig(crop=crop, size=crop))
    generator, offsets = torch.Generator().manual_seed(0), set()
    for _ in range(12):
        batch = inputs.batch(np.array([[0, 1]]), True, generator)
        first = round((float(batch["input"][0, 0, 0, 0]) + 1) * 127.5)
        y0, x0 = divmod(first, 16)
        offsets.add((y0, x0))
        expected = torch.from_numpy((16 * (y0 + y[:crop, :crop]) + x0 + x[:crop, :crop])
                                    / 127.5 - 1).float()
        for t in range(8):  # every frame of the clip cut at the same place
            torch.testing.assert_close(batch["input"][0, t], expected)
        assert torch.all(batch["flow"][0, :, 0] == torch.from_numpy(x0 + x[:crop, :crop]).float())
        assert torch.all(batch["flow"][0, :, 1] == torch.from_numpy(y0 + y[:crop, :crop]).float())
        torch.testing.assert_close(batch["landmarks"][0],
                                   torch.from_numpy(landmarks[1] - np.array([x0, y0],
                                                                            np.float32)))
    assert len(offsets) > 3  # the crops are random


def test_mol_prediction_is_one_row_per_video(stores) -> None:
    config = MOLConfig(crop=32, train_crops=1, scoring="video", **TINY_MOL)
    _, inputs = load_inputs(stores[:1], "mol", 3, config=config)
    model = inputs.build("mol", 3)
    probabilities = predict(model, inputs, torch.device("cpu"), 4, False)
    assert probabilities.shape == (9, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)
    samples = inputs.samples(train=False)
    model.eval()
    with torch.no_grad():
        per_phase = torch.softmax(model(inputs.batch(samples, False, None)["input"])["logits"], 1)
    for v in range(9):  # each video is the mean of its phase clips, counted once
        np.testing.assert_allclose(probabilities[v], per_phase[samples[:, 0] == v].mean(0),
                                   rtol=1e-5)


@pytest.mark.parametrize("model,section", [
    ("fdp", FDPConfig(preset="small", steps=3, batch_size=4, lr=1e-3, size=16)),
    ("mol", MOLConfig(steps=3, batch_size=4, crop=32, train_crops=1, flow=False,
                      scoring="video", **TINY_MOL)),
])
def test_run_training_end_to_end(stores, tmp_path: Path, model, section) -> None:
    config = TrainConfig(model=model, figure_clips=2)
    metrics = run_training(stores, tmp_path, config, progress=False, model_config=section)
    assert metrics["folds"] == 5 and metrics["clips"] == 15
    with (tmp_path / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["dataset"], r["clip_id"]) for r in rows) == sorted(
        [("casme2", f"s{s}_c{c}") for s in range(3) for c in range(3)]
        + [("samm", f"s{s}_c{c}") for s in range(2) for c in range(3)])
    assert all(r["fold"] == r["subject"] for r in rows)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["config"]["model"] == model and saved[model]["steps"] == 3
    if model == "fdp":
        assert saved["fdp"]["preset"] == "small"
    assert not (tmp_path / "attention.png").exists()  # no gradient attention in fdp / mol


def test_mol_clip_scoring_predicts_each_phase_clip(stores) -> None:
    config = MOLConfig(crop=32, train_crops=1, **TINY_MOL)
    assert config.scoring == "clip"  # the published evaluation is the default
    table, inputs = load_inputs(stores[:1], "mol", 3, config=config)
    model = inputs.build("mol", 3)
    per_clip = predict(model, inputs, torch.device("cpu"), 4, False, pool=False)
    samples = inputs.samples(train=False)
    assert per_clip.shape == (len(samples), 3) == (18, 3)
    np.testing.assert_allclose(video_means(per_clip, samples[:, 0], 9),
                               predict(model, inputs, torch.device("cpu"), 4, False), rtol=1e-5)
    scored, rows_of = scored_rows(table, inputs)
    assert len(scored.labels) == 18
    for v in (0, 4, 8):  # a video's rows are its phases, in sample order, with its label
        rows = rows_of(np.array([v]))
        np.testing.assert_array_equal(samples[rows], [[v, p] for p in range(len(rows))])
        assert (scored.labels[rows] == table.labels[v]).all()
        assert [str(c) for c in scored.clip_ids[rows]] == [
            f"{table.clip_ids[v]}_p{p}" for p in range(len(rows))]
    subset = np.array([7, 2])  # a fold's test videos, in fold order
    np.testing.assert_array_equal(samples[rows_of(subset)][:, 1],
                                  inputs[subset].samples(train=False)[:, 1])


def test_mol_run_scores_phase_clips_by_default(stores, tmp_path: Path) -> None:
    section = MOLConfig(steps=2, batch_size=4, crop=32, train_crops=1, flow=False, **TINY_MOL)
    metrics = run_training(stores, tmp_path, TrainConfig(model="mol"), progress=False,
                           model_config=section)
    phases = 3 * (1 + 2 + 3) + 2 * (1 + 2 + 3)
    assert metrics["clips"] == phases == sum(sum(row) for row in metrics["confusion"])
    with (tmp_path / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == phases and rows[0]["clip_id"].endswith("_p0")
    with (tmp_path / "folds.csv").open() as handle:
        assert sum(int(r["test"]) for r in csv.DictReader(handle)) == phases
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["mol"]["preset"] == "small" and saved["mol"]["scoring"] == "clip"
    row = runs_table([tmp_path]).splitlines()[2].strip(" |").split(" | ")
    assert row[1] == "mol (no flow)" and row[-1] == "small"  # the models table names it


def test_sequence_models_refuse_other_stores(tmp_path: Path) -> None:
    from test_training import tiny_store
    modality = tiny_store(tmp_path / "m.zarr", "casme2", 2, 0)
    with pytest.raises(ValueError, match="sequences store"):
        load_sequences([modality], 3)
    with pytest.raises(StoreError, match="not a sequences store"):
        open_store(modality).sequence("s0_c0")
    with pytest.raises(ValueError, match="model"):
        TrainConfig(model="resnet")


def test_train_command_with_a_model_and_the_comparison_table(stores, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mesti.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  protocol: holdout\n  holdout_fraction: 0.3\n"
                      "fdp:\n  preset: small\n  steps: 2\n  batch_size: 4\n  size: 16\n"
                      "  reconstruction: false\n")
    runner = CliRunner()
    result = runner.invoke(main, ["train", stores[0], str(tmp_path / "fdp"), "--model", "fdp",
                                  "--params", str(params), "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "fdp" / "metrics.json").read_text())
    result = runner.invoke(main, ["compare", str(tmp_path / "fdp"), "--out",
                                  str(tmp_path / "models.md")])
    assert result.exit_code == 0, result.output
    row = (tmp_path / "models.md").read_text().splitlines()[2].split(" | ")
    assert row[1:4] == ["fdp (no reconstruction)", "holdout, 3 classes", "a.zarr"]
    assert row[6] == f"{metrics['UF1']:.3f}" and int(row[4]) == metrics["clips"]
    params.write_text("fdp:\n  steps: 2\n  depht: 1\n")
    result = runner.invoke(main, ["train", stores[0], str(tmp_path / "bad"), "--model", "fdp",
                                  "--params", str(params)])
    assert result.exit_code != 0 and "depht" in result.output


def test_unusable_sequences_are_named(stores, monkeypatch) -> None:
    import mesti.train.inputs as inputs_module

    table, clips = load_sequences(stores[:1], 3)
    broken = [dict(c) for c in clips]
    broken[4]["landmarks"] = np.full_like(clips[4]["landmarks"], np.nan)
    monkeypatch.setattr(inputs_module, "load_sequences", lambda s, n, **_: (table, broken))
    with pytest.raises(ValueError, match=f"clip {table.clip_ids[4]}: landmarks"):
        load_inputs(stores[:1], "mol", 3, config=MOLConfig(crop=32, size=16))
    broken[4] = {**clips[4], "frames": clips[4]["frames"][:, :6]}
    with pytest.raises(ValueError, match=rf"\['{table.clip_ids[4]}'\] hold sequences"):
        load_inputs(stores[:1], "fdp", 3)
