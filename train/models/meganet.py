"""MEGANet: Micro-expression Gradient Attention Network.

Nguyen, Khuong, Le, Ngo. "MESTI-MEGANet: Micro-expression Spatio-Temporal Image and
Micro-expression Gradient Attention Networks for Micro-expression Recognition",
arXiv 2509.00056, 2025 (section 3.2). Self-attention after Zhang, Goodfellow, Metaxas,
Odena, "Self-Attention Generative Adversarial Networks", ICML 2019. SE after Hu et al.,
CVPR 2018; CBAM after Woo et al., ECCV 2018 (the paper's input-attention ablation).

Input -> input attention (gradient attention by default) -> stem (3x3 conv, 64 filters,
batch norm, ReLU, max pool) -> residual-attention blocks (two 3x3 convs with batch norm and
ReLU, a shortcut, then SAGAN self-attention) -> global average pooling -> fully connected
layer. The paper does not give block widths or strides; here, as in ResNet, the first block
keeps the stem's width and each later one doubles it (64 -> 128 -> 256), every block halving
the resolution. ``forward`` returns logits; the
softmax lives in the loss and in prediction.

The paper's ablations (its Tables 6-9) are three independent switches and a depth:
``input_attention`` (gradient, or none; SE and CBAM for its attention comparison),
``residual`` (the blocks' shortcuts), ``self_attention`` (the blocks' SAGAN layer) and
``blocks``. ``VARIANTS`` names the rows as shorthands; any switch can be set on top.

Where the input attention sits (``attention_position``): on the 3-channel input (``input``,
the paper's placement, and the only one where gradient attention means image gradients), or
after the stem on its ``stem_width`` feature maps (``stem``). On the input, SE squeezes 3
channels through a hidden width of max(1, 3 // 16) = 1, and CBAM's channel MLP likewise: a
near-degenerate channel gate, which is why the ``stem`` placement is offered for them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------- blocks


class GradientAttention(nn.Module):
    """Absolute horizontal and vertical neighbour differences (zero-padded), summed; a
    learnable 3x3 convolution and a sigmoid make one spatial attention map; the input is
    multiplied by it."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=3, padding=1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        horizontal = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0))
        vertical = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))
        return torch.sigmoid(self.conv(horizontal + vertical))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class SqueezeExcitation(nn.Module):
    """Channel attention from globally pooled features (Hu et al.)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class CBAM(nn.Module):
    """Channel attention (average- and max-pooled) then spatial attention (Woo et al.)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        x = x * channel[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class SelfAttention(nn.Module):
    """SAGAN self-attention: 1x1 query and key at C/8, value at C, softmax over positions,
    a learnable gate initialised at zero, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)          # B, N, C/8
        key = self.key(x).flatten(2)                              # B, C/8, N
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # B, N, N
        value = self.value(x).flatten(2)                          # B, C, N
        out = torch.bmm(value, attention.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class ResidualAttentionBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and ReLU, a shortcut (1x1 projection where the
    shape changes), then self-attention. Either part can be switched off for ablations."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2,
                 residual: bool = True, self_attention: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else \
                nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                              nn.BatchNorm2d(out_channels))
        self.attention = SelfAttention(out_channels) if self_attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.attention(F.relu(out))


# ----------------------------------------------------------------------------- model

INPUT_ATTENTION = {"gradient": GradientAttention, "se": SqueezeExcitation, "cbam": CBAM}
ATTENTION_POSITIONS = ("input", "stem")
# The switches a run may set on top of a variant (params ``train.model``).
SWITCHES = ("input_attention", "residual", "self_attention", "blocks", "attention_position",
            "stem_width", "dropout")


class MEGANet(nn.Module):
    def __init__(self, num_classes: int = 3, in_channels: int = 3, blocks: int = 3,
                 input_attention: str = "gradient", self_attention: bool = True,
                 residual: bool = True, stem_width: int = 64, dropout: float = 0.0,
                 attention_position: str = "input"):
        super().__init__()
        if input_attention != "none" and input_attention not in INPUT_ATTENTION:
            raise ValueError(f"input_attention must be none or one of {sorted(INPUT_ATTENTION)}")
        if not 1 <= blocks <= 5:
            raise ValueError("blocks must be between 1 and 5")
        if attention_position not in ATTENTION_POSITIONS:
            raise ValueError(f"attention_position must be one of {ATTENTION_POSITIONS}")
        self.attention_position = attention_position
        width = in_channels if attention_position == "input" else stem_width
        self.input_attention = nn.Identity() if input_attention == "none" else \
            INPUT_ATTENTION[input_attention](width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True), nn.MaxPool2d(2))
        widths = [stem_width * 2**i for i in range(blocks)]
        self.blocks = nn.Sequential(*[
            ResidualAttentionBlock(w_in, w_out, 2, residual, self_attention)
            for w_in, w_out in zip([stem_width, *widths[:-1]], widths, strict=True)])
        self.num_features = widths[-1]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention_position == "input":
            return self.blocks(self.stem(self.input_attention(x)))
        return self.blocks(self.input_attention(self.stem(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------- variants

NO_BLOCK_PARTS = {"residual": False, "self_attention": False}

VARIANTS: dict[str, dict] = {
    "meganet": {},
    # Table 6, one row each: the components alone and together (the full model is meganet).
    "ablation_residual_only": {"input_attention": "none", "self_attention": False},
    "ablation_self_attention_only": {"input_attention": "none", "residual": False},
    "ablation_residual_self_attention": {"input_attention": "none"},
    "ablation_gradient_attention_only": dict(NO_BLOCK_PARTS),
    "meganet_no_gradient_attention": {"input_attention": "none"},
    "meganet_se": {"input_attention": "se"},
    "meganet_cbam": {"input_attention": "cbam"},
    "meganet_no_self_attention": {"self_attention": False},
    "meganet_no_residual": {"residual": False},
    "meganet_2_blocks": {"blocks": 2},
    "meganet_4_blocks": {"blocks": 4},
    "meganet_se_after_stem": {"input_attention": "se", "attention_position": "stem"},
    "meganet_cbam_after_stem": {"input_attention": "cbam", "attention_position": "stem"},
}


def build(variant: str = "meganet", num_classes: int = 3, **overrides) -> MEGANet:
    """A named MEGANet variant (the paper's ablations), with any argument overridden."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    unknown = sorted(set(overrides) - set(SWITCHES))
    if unknown:
        raise ValueError(f"unknown MEGANet switches {unknown}; known: {', '.join(SWITCHES)}")
    return MEGANet(num_classes=num_classes, **{**VARIANTS[variant], **overrides})
