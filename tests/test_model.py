"""Every MEGANet switch builds the intended network and trains with finite gradients."""

import pytest
import torch
from mesti.train.models.meganet import (
    CBAM,
    VARIANTS,
    GradientAttention,
    SelfAttention,
    SqueezeExcitation,
    build,
)
from torch import nn

EXPECTED_INPUT = {"meganet_no_gradient_attention": nn.Identity, "meganet_se": SqueezeExcitation,
                  "meganet_cbam": CBAM}
EXPECTED_BLOCKS = {"meganet_2_blocks": 2, "meganet_4_blocks": 4}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_structure_forward_backward(variant: str) -> None:
    torch.manual_seed(0)
    model = build(variant, num_classes=5)
    assert isinstance(model.input_attention, EXPECTED_INPUT.get(variant, GradientAttention))
    assert len(model.blocks) == EXPECTED_BLOCKS.get(variant, 3)
    attention = [isinstance(b.attention, SelfAttention) for b in model.blocks]
    assert all(attention) == (variant != "meganet_no_self_attention") and (
        any(attention) == (variant != "meganet_no_self_attention"))
    shortcuts = [b.shortcut is not None for b in model.blocks]
    assert all(shortcuts) == (variant != "meganet_no_residual")
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
