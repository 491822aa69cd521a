"""MOL: micro-expression recognition with optical flow and landmark learning.

Shao, Cheng, et al. "Micro-action-aware learning" of MER jointly with optical flow estimation
and facial landmark detection (code: github CYF-cuber/MOL). The F5C block joins a
fully-connected convolution (FCC: position-aware circular convolution after Zhang et al.,
"ParC-Net", ECCV 2022, a depthwise kernel as long as the feature map, so every output sees a
whole row or column) and a channel correspondence convolution (CCC: a kNN graph over
channels, edge features after Wang et al., "Dynamic Graph CNN", TOG 2019). The flow head's
cost volume is the FlowNet correlation (Dosovitskiy et al., ICCV 2015), written here in plain
PyTorch instead of the published code's compiled CUDA extension.

A clip (B, T, S, S) of grey frames -> per frame a strided convolutional stem to S/8 and F5C
blocks (shared weights) -> features (B, T, C, S/8, S/8), shared by
- the MER head: a 3-D convolution over (T, y, x), global pooling, a linear layer;
- the flow head: correlation of frames t and t+1 plus frame t's features, convolutions, two
  channels upsampled to S x S in pixels: (B, T-1, 2, S, S);
- the landmark head: per frame 68 (x, y) points in crop pixels: (B, T, 68, 2).
Widths and depths are not in the paper's text; the defaults here are our choice.
``forward`` returns a dict with ``logits`` and, when their heads are on, ``flow`` and
``landmarks``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------- blocks


def correlation(a: torch.Tensor, b: torch.Tensor, max_displacement: int) -> torch.Tensor:
    """FlowNet correlation: for each displacement (dy, dx) in [-d, d]^2 (row-major, dy
    outer) the channel mean of a(p) * b(p + (dy, dx)), zero outside b. (B, C, H, W) twice ->
    (B, (2d+1)^2, H, W). One shifted product per displacement: memory stays O(B C H W)."""
    d = max_displacement
    h, w = a.shape[-2:]
    padded = F.pad(b, (d, d, d, d))
    return torch.stack([(a * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1)
                        for dy in range(2 * d + 1) for dx in range(2 * d + 1)], dim=1)


class CircularConv(nn.Module):
    """Depthwise convolution with a kernel spanning the whole axis, on circular padding: a
    global receptive field along that axis at linear cost."""

    def __init__(self, channels: int, size: int, axis: str):
        super().__init__()
        self.axis = axis
        kernel = (size, 1) if axis == "h" else (1, size)
        self.conv = nn.Conv2d(channels, channels, kernel, groups=channels)
        self.position = nn.Parameter(torch.zeros(1, channels, *kernel))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.position
        pad = (0, 0, 0, x.shape[-2] - 1) if self.axis == "h" else (0, x.shape[-1] - 1, 0, 0)
        return self.conv(F.pad(x, pad, mode="circular"))


class FullyConnectedConv(nn.Module):
    """FCC: half the channels convolved globally along rows then columns, the other half
    columns then rows, each with its residual; then a 1x1 feed-forward (Hardswish)."""

    def __init__(self, channels: int, size: int, ffn_ratio: float = 2.0):
        super().__init__()
        if channels % 2:
            raise ValueError("FCC needs an even channel count")
        half = channels // 2
        self.norm1, self.norm2 = nn.BatchNorm2d(half), nn.BatchNorm2d(half)
        self.first = nn.Sequential(CircularConv(half, size, "h"), CircularConv(half, size, "w"))
        self.second = nn.Sequential(CircularConv(half, size, "w"),
                                    CircularConv(half, size, "h"))
        hidden = int(channels * ffn_ratio)
        self.ffn = nn.Sequential(nn.BatchNorm2d(channels), nn.Conv2d(channels, hidden, 1),
                                 nn.Hardswish(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = torch.chunk(x, 2, dim=1)
        x = torch.cat([x1 + self.first(self.norm1(x1)), x2 + self.second(self.norm2(x2))], 1)
        return x + self.ffn(x)


class ChannelCorrespondenceConv(nn.Module):
    """CCC: each channel is a graph node whose feature is its flattened map (D = H*W); its
    ``neighbours`` nearest channels by cosine similarity (itself included) give edge features
    ReLU(theta(f_i) + phi(f_j - f_i)), max-pooled over the neighbours, added back."""

    def __init__(self, size: int, neighbours: int = 4):
        super().__init__()
        dim = size * size
        self.neighbours = neighbours
        self.theta = nn.Linear(dim, dim)
        self.phi = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = min(self.neighbours, c)
        nodes = x.flatten(2)                                         # (B, C, D)
        unit = F.normalize(nodes, dim=2)
        index = torch.bmm(unit, unit.transpose(1, 2)).topk(k, dim=-1).indices  # (B, C, k)
        neighbours = torch.gather(nodes[:, None].expand(b, c, c, h * w), 2,
                                  index[..., None].expand(b, c, k, h * w))   # (B, C, k, D)
        edges = F.relu(self.theta(nodes)[:, :, None] + self.phi(neighbours - nodes[:, :, None]))
        return x + edges.amax(dim=2).view(b, c, h, w)


class F5C(nn.Module):
    """The F5C block: FCC then CCC."""

    def __init__(self, channels: int, size: int, neighbours: int):
        super().__init__()
        self.fcc = FullyConnectedConv(channels, size)
        self.ccc = ChannelCorrespondenceConv(size, neighbours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccc(self.fcc(x))


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FlowHead(nn.Module):
    """Correlation of consecutive frames' features plus the first frame's features ->
    (u, v) at feature resolution -> bilinear upsampling to the input, scaled to its pixels."""

    def __init__(self, channels: int, max_displacement: int, hidden: int):
        super().__init__()
        self.max_displacement = max_displacement
        cost = (2 * max_displacement + 1) ** 2
        self.net = nn.Sequential(conv_bn(cost + channels, hidden), conv_bn(hidden, hidden),
                                 nn.Conv2d(hidden, 2, 3, padding=1))

    def forward(self, first: torch.Tensor, second: torch.Tensor, size: int) -> torch.Tensor:
        cost = correlation(first, second, self.max_displacement)
        flow = self.net(torch.cat([cost, first], dim=1))
        scale = size / flow.shape[-1]
        return F.interpolate(flow, size=(size, size), mode="bilinear",
                             align_corners=False) * scale


class LandmarkHead(nn.Module):
    """Per frame: a 1x1 reduction, the flattened map, a linear layer to 68 (x, y) points,
    centred on the crop and scaled by its half-size."""

    def __init__(self, channels: int, size: int, points: int = 68, reduced: int = 8):
        super().__init__()
        self.points = points
        self.reduce = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(reduced * size * size, points * 2)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        out = self.fc(self.reduce(x).flatten(1)).view(-1, self.points, 2)
        return (out + 1) * (size / 2)


# ----------------------------------------------------------------------------- model


class MOL(nn.Module):
    def __init__(self, num_classes: int = 3, frames: int = 8, size: int = 128, width: int = 64,
                 blocks: int = 2, neighbours: int = 4, max_displacement: int = 4,
                 flow: bool = True, landmarks: bool = True, points: int = 68,
                 dropout: float = 0.0):
        super().__init__()
        if size % 8:
            raise ValueError(f"MOL's input size must be a multiple of 8, got {size}")
        self.frames, self.size, side = frames, size, size // 8
        self.stem = nn.Sequential(conv_bn(1, width // 2, 2), conv_bn(width // 2, width, 2),
                                  conv_bn(width, width, 2))
        self.blocks = nn.Sequential(*[F5C(width, side, neighbours) for _ in range(blocks)])
        self.mer = nn.Sequential(nn.Conv3d(width, width, 3, padding=1, bias=False),
                                 nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        self.num_features = width
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        self.flow = FlowHead(width, max_displacement, width) if flow else None
        self.landmarks = LandmarkHead(width, side, points) if landmarks else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S) frames -> per-frame features (B, T, C, S/8, S/8)."""
        b, t, h, w = x.shape
        if t != self.frames or h != self.size or w != self.size:
            raise ValueError(f"MOL was built for ({self.frames}, {self.size}, {self.size}) "
                             f"clips, got {(t, h, w)}")
        features = self.blocks(self.stem(x.reshape(b * t, 1, h, w)))
        return features.view(b, t, *features.shape[1:])

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.mer(x.transpose(1, 2)).mean(dim=(2, 3, 4))
        return self.head(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.forward_features(x)
        b, t = features.shape[:2]
        out = {"logits": self.forward_head(features)}
        if self.flow is not None:
            first = features[:, :-1].reshape(b * (t - 1), *features.shape[2:])
            second = features[:, 1:].reshape(b * (t - 1), *features.shape[2:])
            out["flow"] = self.flow(first, second, self.size).view(b, t - 1, 2, self.size,
                                                                    self.size)
        if self.landmarks is not None:
            points = self.landmarks(features.flatten(0, 1), self.size)
            out["landmarks"] = points.view(b, t, *points.shape[1:])
        return out


# --------------------------------------------------------------------------- variants

VARIANTS: dict[str, dict] = {
    "mol": {},
    "mol_no_flow": {"flow": False},
    "mol_no_landmarks": {"landmarks": False},
    "mol_mer_only": {"flow": False, "landmarks": False},
}


def build(variant: str = "mol", num_classes: int = 3, **overrides) -> MOL:
    """A named MOL variant (the paper's ablations), with any argument overridden."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return MOL(num_classes=num_classes, **{**VARIANTS[variant], **overrides})
