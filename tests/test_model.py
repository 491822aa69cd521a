"""Every MEGANet switch builds the intended network and trains with finite gradients."""

import pytest
import torch
from mesti.train.models.meganet import (
    CBAM,
    INPUT_ATTENTION,
    VARIANTS,
    GradientAttention,
    SelfAttention,
    SqueezeExcitation,
    build,
)
from torch import nn

DEFAULTS = {"input_attention": "gradient", "residual": True, "self_attention": True,
            "blocks": 3, "attention_position": "input"}

# The paper's Table 6, row by row: (gradient attention, residual, self-attention).
TABLE_6 = {"ablation_residual_only": ("none", True, False),
           "ablation_self_attention_only": ("none", False, True),
           "ablation_residual_self_attention": ("none", True, True),
           "ablation_gradient_attention_only": ("gradient", False, False),
           "meganet": ("gradient", True, True)}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_structure_forward_backward(variant: str) -> None:
    torch.manual_seed(0)
    model = build(variant, num_classes=5)
    switches = {**DEFAULTS, **VARIANTS[variant]}
    expected = nn.Identity if switches["input_attention"] == "none" else \
        INPUT_ATTENTION[switches["input_attention"]]
    assert type(model.input_attention) is expected
    assert model.attention_position == switches["attention_position"]
    assert len(model.blocks) == switches["blocks"]
    attention = [isinstance(b.attention, SelfAttention) for b in model.blocks]
    assert attention == [switches["self_attention"]] * len(model.blocks)
    shortcuts = [b.shortcut is not None for b in model.blocks]
    assert shortcuts == [switches["residual"]] * len(model.blocks)
    assert model.head.out_features == 5
    assert model.num_features == 64 * 2 ** (len(model.blocks) - 1)

    x = torch.randn(3, 3, 48, 48, requires_grad=True)
    logits = model(x)
    assert logits.shape == (3, 5)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(x.grad).all()


def test_gradient_attention_follows_the_definition() -> None:
    block = GradientAttention(1)
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 0, 1, 1] = 1.0  # identity 3x3 kernel
        block.conv.bias.zero_()
    x = torch.tensor([[[[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]]]])
    horizontal = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    vertical = torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    expected = torch.sigmoid(horizontal + vertical)
    torch.testing.assert_close(block.attention_map(x)[0, 0], expected)
    torch.testing.assert_close(block(x)[0, 0], x[0, 0] * expected)


def test_self_attention_starts_as_identity() -> None:
    block = SelfAttention(16)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(block(x), x)
    assert block.query.out_channels == 2 and block.value.out_channels == 16


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        build("resnet")


def test_table_6_rows_are_presets() -> None:
    for variant, (gradient, residual, self_attention) in TABLE_6.items():
        model = build(variant)
        assert isinstance(model.input_attention, GradientAttention) == (gradient == "gradient")
        assert all((b.shortcut is not None) == residual for b in model.blocks)
        assert all(isinstance(b.attention, SelfAttention) == self_attention
                   for b in model.blocks)


def _outputs(**switches) -> tuple[int, torch.Tensor]:
    torch.manual_seed(0)
    model = build("meganet", **switches).eval()
    for module in model.modules():  # SAGAN's gate starts at 0: open it so it counts
        if isinstance(module, SelfAttention):
            module.gamma.data.fill_(0.5)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return sum(p.numel() for p in model.parameters()), model(x)


@pytest.mark.parametrize("switch", [{"input_attention": "none"}, {"residual": False},
                                    {"self_attention": False}, {"blocks": 2},
                                    {"input_attention": "se", "attention_position": "stem"}])
def test_every_switch_changes_the_computation(switch: dict) -> None:
    full_count, full = _outputs()
    count, out = _outputs(**switch)
    assert count != full_count
    assert not torch.allclose(out, full)


def test_se_and_cbam_after_the_stem() -> None:
    for kind, cls in (("se", SqueezeExcitation), ("cbam", CBAM)):
        on_input = build("meganet", input_attention=kind)
        after_stem = build("meganet", input_attention=kind, attention_position="stem")
        assert isinstance(after_stem.input_attention, cls)
        assert next(on_input.input_attention.parameters()).shape == (1, 3)  # hidden width 1
        first = next(after_stem.input_attention.parameters())
        assert first.shape[1] == 64  # it sees the stem's 64 feature maps, not 3 channels
        after_stem(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="attention_position"):
        build("meganet", attention_position="head")
    with pytest.raises(ValueError, match="unknown MEGANet switches"):
        build("meganet", gradient=True)
