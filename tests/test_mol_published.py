"""MOL's published preset against the published code's sizes: parameter counts of each part
(3 classes, neighbour number 4) and the output shape of each stage for the published input,
one 8-frame clip of 128 x 128 grey frames.

The counts were taken from the published model (CYF-cuber/MOL: MOL_model.py, modules/*.py)
built with its own constructor arguments. Its MER head has 738,339 parameters with 3 classes
(738,853 with 5: 514 more, the last layer's 2 x 257)."""

import pytest
import torch
from mesti.train.inputs import MOLConfig
from mesti.train.losses import mol_loss
from mesti.train.models import mol

PUBLISHED = {"total": 44_104_865, "flow": 39_730_282, "landmarks": 3_318_440, "mer": 738_339,
             "ccc": 131_584, "fcc": 17_794, "stack": 19_048}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def model() -> mol.MOL:
    torch.manual_seed(0)
    return mol.build("mol", 3, preset="published", neighbours=4).eval()


def test_parameter_counts_match_the_published_model(model) -> None:
    parts = {"total": model, "flow": model.flow, "landmarks": model.landmarks, "mer": model.mer,
             "stack": model.stack}
    counts = {name: n_params(part) for name, part in parts.items()}
    for block in (model.first, model.second):  # one F5C block per frame of a pair
        counts["ccc"], counts["fcc"] = n_params(block.ccc), n_params(block.fcc)
        for name, expected in PUBLISHED.items():
            assert counts[name] == pytest.approx(expected, rel=0.01), name
    assert counts == PUBLISHED  # within 1 % above; in fact exact
    assert n_params(mol.build("mol", 5)) - counts["total"] == 2 * 257


def test_each_stage_has_the_published_shape(model) -> None:
    shapes = {}

    def keep(name):
        def hook(module, args, out) -> None:
            shapes.setdefault(name, tuple(out.shape))
        return hook

    for name, module in [("stack", model.stack), ("fcc", model.first.fcc),
                         ("ccc", model.first.ccc), ("first", model.first),
                         ("second", model.second), ("mer_conv", model.mer.conv),
                         ("mer_pool", model.mer.pool), ("mer_fc1", model.mer.fc1),
                         ("flow_conv3", model.flow.conv3), ("flow_conv3_1", model.flow.conv3_1),
                         ("flow_conv6", model.flow.conv6_1), ("flow", model.flow),
                         ("landmark_conv", model.landmarks.conv), ("landmarks", model.landmarks)]:
        module.register_forward_hook(keep(name))
    x = torch.randn(1, 8, 128, 128)
    with torch.no_grad():
        out = model(x)
    pairs = 7
    assert shapes == {
        "stack": (8, 128, 16, 16),              # every frame once, shared weights
        "fcc": (pairs, 128, 16, 16), "ccc": (pairs, 128, 16, 16),
        "first": (pairs, 128, 16, 16), "second": (pairs, 128, 16, 16),
        "mer_conv": (1, 32, 8, 8, 10),           # (B, C, s, s, 2 (T - 1)) -> Conv3d (2, 2, 5)
        "mer_pool": (1, 32, 4, 4, 5), "mer_fc1": (1, 256),
        "flow_conv3": (8, 256, 16, 16),          # its own encoder, once per frame
        "flow_conv3_1": (pairs, 256, 16, 16),    # after 32 + 441 + 256 input channels
        "flow_conv6": (pairs, 1024, 2, 2), "flow": (1, pairs, 2, 128, 128),
        "landmark_conv": (pairs, 32, 14, 14), "landmarks": (pairs, 68, 2),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (1, 3), "flow": (1, pairs, 2, 128, 128), "landmarks": (1, pairs, 68, 2)}
    assert model.flow.conv3_1[0].in_channels == 32 + 21 * 21 + 2 * 128


def test_the_published_settings_are_the_config_defaults() -> None:
    config = MOLConfig()
    assert (config.preset, config.lr, config.weight_decay, config.optimiser, config.steps,
            config.batch_size, config.train_crops, config.crop, config.size) == (
        "published", 1e-4, 1e-3, "adamw", 1000, 32, 5, 128, 128)
    assert (config.flow_weight, config.landmark_weight, config.neighbours, config.scoring) == (
        0.5, 0.5, 4, "clip")


def test_mol_loss_sums_as_published() -> None:
    """An independent oracle: the loss written out term by term with loops."""
    torch.manual_seed(0)
    b, t, s = 3, 8, 32
    output = {"logits": torch.randn(b, 3), "flow": torch.randn(b, t - 1, 2, s, s),
              "landmarks": torch.rand(b, t - 1, 68, 2) * s}
    label, flow = torch.tensor([0, 2, 1]), torch.randn(b, t - 1, 2, s, s)
    landmarks, distance = torch.rand(b, t, 68, 2) * s, torch.rand(b, t) * 10 + 0.5
    expected = torch.nn.functional.cross_entropy(output["logits"], label)
    for i in range(b):
        expected += 0.5 * ((output["flow"][i] - flow[i]) ** 2).mean()
        for j in range(t - 1):  # predicted frame j + 1
            error = (output["landmarks"][i, j] - landmarks[i, j + 1]).abs().mean()
            expected += 0.5 * error / max(float(distance[i, j + 1]), 1.0)
    got = mol_loss(output, label, flow, landmarks, distance, 0.5, 0.5)
    torch.testing.assert_close(got, expected)
