"""FDP: fine-grained dynamic perception.

Shao, Cheng, Zhang, Shi, Li, Ma, Yeung. "Micro-Expression Recognition via Fine-Grained Dynamic
Perception", 2025 (code: github CYF-cuber/FDP). Approximate rank pooling after Bilen et al.,
"Dynamic Image Networks for Action Recognition", CVPR 2016.

T grey frames (B, T, S, S) -> a local-global transformer per frame (patch tokens, global
self-attention, a depthwise convolution over the token grid for the local part, an MLP) ->
one S x S feature map per frame -> the (S, S, T) volume -> a Conv3d whose kernel spans all
T frames (3 x 3 x T): the learned rank pooling, one dynamic representation (B, R, S, S) ->
shared by a classifier and an encoder-decoder (SegNet-like: max-pool indices reused for
unpooling) that reconstructs the frames' dynamic image through a sigmoid.

The paper's text gives neither widths nor depths; the defaults here are our choice and say
so. ``forward`` returns a dict: ``logits`` and, with the reconstruction head,
``reconstruction`` (B, 1, S, S) in 0..1. ``dynamic_image_target`` is the training target.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------- blocks


def dynamic_image_target(frames: torch.Tensor) -> torch.Tensor:
    """Bilen's dynamic image of (B, T, S, S) frames, sum_t (2t - T - 1) x_t (t = 1..T, the
    raw-frame weights of docs/design.md section 4), min-max scaled per clip to 0..1 as the
    published code's uint8 image / 255; a still clip maps to 0.5. Shape (B, 1, S, S)."""
    t = frames.shape[1]
    alpha = 2 * torch.arange(1, t + 1, dtype=frames.dtype, device=frames.device) - t - 1
    image = torch.einsum("t,bthw->bhw", alpha, frames)
    lo = image.amin(dim=(1, 2), keepdim=True)
    span = image.amax(dim=(1, 2), keepdim=True) - lo
    scaled = torch.where(span > 0, (image - lo) / span.clamp_min(1e-12),
                         torch.full_like(image, 0.5))
    return scaled[:, None]


class LocalGlobalBlock(nn.Module):
    """Pre-norm transformer block: global multi-head self-attention over the patch tokens,
    a 3x3 depthwise convolution on the token grid (local), then an MLP; each residual."""

    def __init__(self, dim: int, heads: int, grid: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.grid = grid
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (N, L, D)
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        n, _, dim = x.shape
        grid = x.transpose(1, 2).reshape(n, dim, self.grid, self.grid)
        x = x + self.local(grid).flatten(2).transpose(1, 2)
        return x + self.mlp(self.norm2(x))


class FrameTransformer(nn.Module):
    """One S x S feature map per frame: patch tokens through local-global blocks, each token
    projected back to its patch's pixels."""

    def __init__(self, size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        if size % patch:
            raise ValueError(f"image size {size} is not a multiple of the patch size {patch}")
        self.size, self.patch, grid = size, patch, size // patch
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, grid * grid, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*[LocalGlobalBlock(dim, heads, grid) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.unpatch = nn.Linear(dim, patch * patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (N, 1, S, S) -> (N, S, S)
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        pixels = self.unpatch(self.norm(self.blocks(tokens)))      # (N, L, p*p)
        return F.fold(pixels.transpose(1, 2), (self.size, self.size), self.patch,
                      stride=self.patch)[:, 0]


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SegNetDecoder(nn.Module):
    """Encoder-decoder after SegNet (Badrinarayanan et al., TPAMI 2017): max pooling keeps its
    indices and the decoder unpools with them; a sigmoid gives an image in 0..1."""

    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        pairs = list(pairwise([c_in, *widths]))
        self.down = nn.ModuleList([conv_bn(a, b) for a, b in pairs])
        # the way back mirrors the way down; the first layer keeps its width for the output
        self.up = nn.ModuleList([conv_bn(b, a if i else b) for i, (a, b) in enumerate(pairs)][::-1])
        self.out = nn.Conv2d(widths[0], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, sizes = [], []
        for layer in self.down:
            x = layer(x)
            sizes.append(x.shape[-2:])
            x, index = F.max_pool2d(x, 2, return_indices=True)
            indices.append(index)
        for layer, index, size in zip(self.up, indices[::-1], sizes[::-1], strict=True):
            x = layer(F.max_unpool2d(x, index, 2, output_size=size))
        return torch.sigmoid(self.out(x))


# ----------------------------------------------------------------------------- model


class FDP(nn.Module):
    def __init__(self, num_classes: int = 3, frames: int = 8, size: int = 64, patch: int = 8,
                 embed_dim: int = 128, depth: int = 4, heads: int = 4, rank_channels: int = 16,
                 head_widths: tuple[int, ...] = (32, 64, 128),
                 decoder_widths: tuple[int, ...] = (32, 64), reconstruction: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.frames, self.size = frames, size
        self.frame_features = FrameTransformer(size, patch, embed_dim, depth, heads)
        # learned rank pooling: one kernel over every frame of the (T, S, S) volume
        self.rank_pool = nn.Sequential(
            nn.Conv3d(1, rank_channels, (frames, 3, 3), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(rank_channels), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(*[conv_bn(a, b, 2) for a, b in
                                          pairwise([rank_channels, *head_widths])])
        self.num_features = head_widths[-1]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        self.reconstruction = SegNetDecoder(rank_channels, decoder_widths) \
            if reconstruction else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S) frames -> the dynamic representation (B, R, S, S)."""
        b, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"FDP was built for {self.frames} frames, got {t}")
        maps = self.frame_features(x.reshape(b * t, 1, h, w)).reshape(b, 1, t, h, w)
        return self.rank_pool(maps)[:, :, 0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.classifier(x).mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.forward_features(x)
        out = {"logits": self.forward_head(features)}
        if self.reconstruction is not None:
            out["reconstruction"] = self.reconstruction(features)
        return out


# --------------------------------------------------------------------------- variants

VARIANTS: dict[str, dict] = {
    "fdp": {},
    "fdp_no_reconstruction": {"reconstruction": False},
}


def build(variant: str = "fdp", num_classes: int = 3, **overrides) -> FDP:
    """A named FDP variant (the paper's ablation), with any argument overridden."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return FDP(num_classes=num_classes, **{**VARIANTS[variant], **overrides})
