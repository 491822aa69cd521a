"""FDP: fine-grained dynamic perception.

Shao, Cheng, Zhang, Shi, Li, Ma, Yeung. "Micro-Expression Recognition via Fine-Grained Dynamic
Perception", 2025 (code: github CYF-cuber/FDP, files fdp.py, train.py, data.py; the sizes of
the ``published`` preset are read from them). Approximate rank pooling after Bilen, Fernando,
Gavves, Vedaldi, Gould, "Dynamic Image Networks for Action Recognition", CVPR 2016. The frame
encoder's blocks follow Next-ViT (Li et al., 2022); the decoder is SegNet (Badrinarayanan et
al., TPAMI 2017).

T grey frames (B, T, S, S) -> a hybrid convolution/transformer frame encoder per frame (stem
64-32-64, four stages of local blocks at widths 96-192-384-768 and depths 3-4-10-3, batch
norm, global average pooling, a linear layer to S*S = 4096) -> the (T, S*S) features laid out
as an (S, S, T) volume -> the classifier: a Conv3d 1 -> 8 over (3, 3, T), the learned rank
pooling, whose (B, 8, S, S) output is the dynamic representation; max-pool (3, 3), FC 256,
ReLU, FC classes -> and a SegNet decoder (five stages 64-128-256-512-512, max-pool indices
reused for unpooling) from the dynamic representation to one S x S image through a sigmoid,
trained towards the frames' dynamic image (``dynamic_image_target``).

``forward`` returns a dict: ``logits`` and, with the reconstruction head, ``reconstruction``
(B, 1, S, S) in 0..1. ``PRESETS`` name the sizes: ``published`` (85,304,206 parameters with
5 classes at S = 64) and ``small``, the same structure with fewer and narrower blocks for the
sample and CI on a CPU.

Two facts of the published code that its description does not make obvious, kept here:
- its encoder constructor lists a global block (efficient multi-head self-attention with
  spatial reduction 8-4-2-1, widths 128-256-512-1024) after each stage's local blocks, but its
  loop builds only ``depths[i]`` blocks per stage, so no global block is ever built; the
  published parameter count (frame encoder 54,952,448) is that of the local blocks alone.
  ``global_blocks=True`` adds them (``GlobalBlock``).
- the per-frame features (B, T, S*S) are reshaped row-major to (B, 1, S, S, T), not stacked
  along time: the volume's last axis holds T consecutive features of one frame, and frame t
  fills rows t*S/T .. (t+1)*S/T - 1. ``volume="flat"`` keeps that layout; ``volume="frames"``
  puts frame t at time index t, so the (3, 3, T) kernel spans the T frames at each pixel.

Differences from the published code: every one that remains, why, and its expected effect.

====================  ======================================================================
what                  published -> here; why; expected effect
====================  ======================================================================
face crops            published: dlib's 68 landmarks on every frame, rotated to the eye line,
                      a square 2.5x the landmark span, 64 px, grey from RGB, no equalisation.
                      here: the sequences store's crops (detected and aligned once per clip,
                      one similarity transform, the project's margins, luma equalisation by
                      default), area-resized to ``size``. why: one crop pipeline for every
                      model; per-frame alignment adds jitter that the dynamic image encodes.
                      effect: a looser, equalised crop; figures not comparable digit for digit.
frame window          published: 8 frames at i * floor(L/8) of the data set's clip folder.
                      here: the same rule on phase 0 of the sequences store (``sampling:
                      uniform``), whose window runs from the sheet's onset to its offset.
                      why: one window definition for every model. effect: other frames only
                      where a clip folder holds frames outside onset..offset.
input scaling         published: Normalize(0.5, 0.5), then minus the data set's mean pixel and
                      over the maximum after centring. here: Normalize(0.5, 0.5). why: no
                      data-set statistic to carry into folds and prediction. effect: none
                      expected, the stem's first convolution has no bias and is followed by
                      batch norm, which removes a global affine rescaling of the input (up to
                      its epsilon and the zero padding at the border).
frames in encoder     published: a Python loop over the T frames, a batch of B each.
                      here: the B*T frames in one batch. why: one launch per layer instead of
                      T (the published loop is launch-bound on a GPU). effect: batch norm's
                      training statistics pool B*T frames instead of the B of one frame
                      position; small.
model selection       published: the best epoch on the test subject. here: the last step
                      (``train.selection: last``; or ``validation`` on training subjects).
                      why: choosing on the test fold leaks it. effect: the published figures
                      are optimistic; results here are expected lower.
step count            published: stops after step 501 (its check follows the step).
                      here: exactly ``steps`` (500). effect: negligible.
folds, clip lists     published: the authors' class folders and subject lists. here: this
                      project's label sheets and protocols (train/protocols.py). why: one
                      protocol code path for all models. effect: other clips where the lists
                      differ (train/lists/README.md).
====================  ======================================================================

Kept as published, though easy to mistake: the MSE target is the uint8 dynamic image / 255
(its floor to 1/255 steps); the Conv3d, classifier and decoder keep PyTorch's default
initialisation and only the frame encoder the truncated normal (std 0.02); the optimiser is
Adam with L2 weight decay (not AdamW).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mesti.pipeline.pooling.weights import dynamic_tvm
from torch import nn

# ---------------------------------------------------------------------------- target


def dynamic_image_target(frames: torch.Tensor) -> torch.Tensor:
    """The frames' dynamic image as the published training sees it, (B, 1, S, S) in 0..1.

    Bilen's approximate rank pooling over the running means psi_t = mean(x_1..x_t) of the T
    frames (B, T, S, S), expanded onto the frames (``dynamic_tvm`` weights), min-max scaled
    per clip to 0..255 in OpenCV's arithmetic (x * scale + shift, scale = 255 / span),
    truncated to integers (the published uint8 image) and divided by 255 (as the published
    loss does). A still clip maps to 0, as OpenCV maps a flat image to the lower bound.
    Min-max scaling makes the target independent of the frames' own affine scale (uint8 or
    0..1)."""
    weights = torch.from_numpy(dynamic_tvm(frames.shape[1])).to(frames.device)
    image = torch.einsum("t,bthw->bhw", weights, frames.to(torch.float64))
    lo = image.amin(dim=(1, 2), keepdim=True)
    span = image.amax(dim=(1, 2), keepdim=True) - lo
    scale = torch.where(span > np.finfo(np.float64).eps, 255 / span, torch.zeros_like(span))
    scaled = (image * scale - lo * scale).clamp(0, 255)
    return (torch.floor(scaled) / 255).to(torch.float32)[:, None]


# ---------------------------------------------------------------------------- blocks


def _divisible(value: float, divisor: int = 32) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10 % down
    (the published MLP widths: 3 x 96 = 288, 2 x 96 = 192, ...)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., ECCV 2016): in training, zero a residual branch for a
    random subset of samples and scale the kept ones by 1 / (1 - p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Projection(nn.Module):
    """A block's entry: 2x2 average pooling when it halves the grid, then a 1x1 convolution
    and batch norm when the width changes or the grid halves; else the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) \
            if stride == 2 else nn.Identity()
        change = stride == 2 or c_in != c_out
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False) if change else nn.Identity()
        self.norm = nn.BatchNorm2d(c_out) if change else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.pool(x)))


class ConvMLP(nn.Module):
    """Two 1x1 convolutions with a ReLU between, hidden width ``_divisible(ratio * c)``."""

    def __init__(self, channels: int, ratio: float):
        super().__init__()
        hidden = _divisible(channels * ratio)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class LocalBlock(nn.Module):
    """Local feature aggregation: projection, a residual dense 3x3 convolution (the published
    "multi-head convolutional attention" has one group), then a residual batch-normed MLP
    (ratio 3); both residuals with stochastic depth."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, drop_path: float = 0.0,
                 mlp_ratio: float = 3.0):
        super().__init__()
        self.projection = Projection(c_in, c_out, stride)
        self.local = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)
        self.mlp = ConvMLP(c_out, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection(x)
        x = x + self.drop_path(self.local(x))
        return x + self.drop_path(self.mlp(self.norm(x)))


class EfficientAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from the token sequence average-
    pooled by ``reduction``^2 and batch-normed (spatial reduction); heads of ``head_dim``."""

    def __init__(self, dim: int, head_dim: int, reduction: int):
        super().__init__()
        self.heads, self.scale = dim // head_dim, head_dim ** -0.5
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.pool = nn.AvgPool1d(reduction ** 2) if reduction > 1 else None
        self.norm = nn.BatchNorm1d(dim) if reduction > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (N, L, D)
        n, length, dim = x.shape
        source = x
        if self.pool is not None:
            source = self.norm(self.pool(x.transpose(1, 2))).transpose(1, 2)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, -1, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(source)), split(self.v(source))
        attention = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(n, length, dim))


class GlobalBlock(nn.Module):
    """Global feature aggregation: efficient self-attention on the first ``mix`` of the
    channels, a 3x3 convolution on a projection to the rest, concatenated, then an MLP
    (ratio 2). Listed in the published constructor but never built there (module docstring);
    here only with ``global_blocks=True``."""

    def __init__(self, c_in: int, c_out: int, reduction: int, head_dim: int,
                 drop_path: float = 0.0, mix: float = 0.75):
        super().__init__()
        attended = _divisible(int(c_out * mix))
        if attended >= c_out:
            raise ValueError(f"a global block of width {c_out} leaves no channels beside its "
                             f"{attended} attended ones; use a wider block")
        self.projection = Projection(c_in, attended)
        self.norm1 = nn.BatchNorm2d(attended)
        self.attention = EfficientAttention(attended, head_dim, reduction)
        self.branch = Projection(attended, c_out - attended)
        self.local = nn.Conv2d(c_out - attended, c_out - attended, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)
        self.mlp = ConvMLP(c_out, 2.0)
        self.drop_attention = DropPath(drop_path * mix)
        self.drop_local = DropPath(drop_path * (1 - mix))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection(x)
        n, c, h, w = x.shape
        tokens = self.norm1(x).flatten(2).transpose(1, 2)
        x = x + self.drop_attention(self.attention(tokens)).transpose(1, 2).reshape(n, c, h, w)
        branch = self.branch(x)
        x = torch.cat([x, branch + self.drop_local(self.local(branch))], dim=1)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class FrameEncoder(nn.Module):
    """One S*S feature vector per grey frame: a four-convolution stem (stride 4 in all), four
    stages of local blocks (the first block of stages 2-4 halves the grid), optionally one
    global block per stage, batch norm, global average pooling, a linear layer."""

    def __init__(self, out_features: int, stem: Sequence[int], depths: Sequence[int],
                 widths: Sequence[int], drop_path: float, global_blocks: bool = False,
                 global_widths: Sequence[int] = (), reductions: Sequence[int] = (),
                 head_dim: int = 8):
        super().__init__()
        s0, s1, s2 = stem
        self.stem = nn.Sequential(conv_bn_relu(1, s0, 2), conv_bn_relu(s0, s1),
                                  conv_bn_relu(s1, s2), conv_bn_relu(s2, s2, 2))
        rates = np.linspace(0, drop_path, sum(depths)).tolist()  # stochastic depth per block
        stages, c_in, index = [], s2, 0
        for stage, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            blocks = []
            for i in range(depth):
                blocks.append(LocalBlock(c_in, width, 2 if stage and not i else 1,
                                         rates[index + i]))
                c_in = width
            if global_blocks:
                blocks.append(GlobalBlock(c_in, global_widths[stage], reductions[stage],
                                          head_dim, rates[index + depth - 1]))
                c_in = global_widths[stage]
            index += depth
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.norm = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, out_features)
        for module in self.modules():       # the published initialisation of the encoder
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # (N, 1, S, S) -> (N, S*S)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.norm(x).mean(dim=(2, 3)))


class RankPoolClassifier(nn.Module):
    """The published classifier: a Conv3d 1 -> ``channels`` over (3, 3, T) with no temporal
    padding (the learned rank pooling; its output is the dynamic representation), max
    pooling (3, 3), then FC ``hidden``, ReLU, FC classes."""

    def __init__(self, num_classes: int, size: int, frames: int, channels: int, hidden: int):
        super().__init__()
        self.rank_pool = nn.Conv3d(1, channels, (3, 3, frames), padding=(1, 1, 0))
        self.fc1 = nn.Linear(channels * (size // 3) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def dynamic(self, volume: torch.Tensor) -> torch.Tensor:      # (B, 1, S, S, T) -> (B, C, S, S)
        return self.rank_pool(volume)[..., 0]

    def forward(self, dynamic: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(F.max_pool2d(dynamic, 3).flatten(1))))


class SegNetDecoder(nn.Module):
    """SegNet: stages of biased 3x3 convolutions with batch norm and ReLU, each closed by a
    2x2 max pooling that keeps its indices; the mirrored way back unpools with them, each
    stage's last convolution narrowing to the previous stage's width, and a last plain 3x3
    convolution to ``c_out`` channels. The input side must be a multiple of 2^stages."""

    def __init__(self, c_in: int, stages: Sequence[Sequence[int]], c_out: int = 1):
        super().__init__()
        down, up, width = [], [], c_in
        for stage in stages:
            convs = []
            for w in stage:
                convs.append(conv_bn_relu(width, w, bias=True))
                width = w
            down.append(nn.Sequential(*convs))
        for k in range(len(stages) - 1, -1, -1):
            stage = stages[k]
            back = stages[k - 1][-1] if k else None
            convs = [conv_bn_relu(w, w, bias=True) for w in stage[:-1]]
            if back is not None:
                convs.append(conv_bn_relu(stage[-1], back, bias=True))
            up.append(nn.Sequential(*convs))
        self.down, self.up = nn.ModuleList(down), nn.ModuleList(up)
        self.out = nn.Conv2d(stages[0][-1], c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.down:
            x, index = F.max_pool2d(stage(x), 2, return_indices=True)
            indices.append(index)
        for stage, index in zip(self.up, indices[::-1], strict=True):
            x = stage(F.max_unpool2d(x, index, 2))
        return self.out(x)


# ----------------------------------------------------------------------------- model


class FDP(nn.Module):
    """FDP over (B, T, S, S) grey frames; the arguments are the sizes a preset names."""

    def __init__(self, num_classes: int = 3, frames: int = 8, size: int = 64,
                 stem: Sequence[int] = (64, 32, 64), depths: Sequence[int] = (3, 4, 10, 3),
                 widths: Sequence[int] = (96, 192, 384, 768), drop_path: float = 0.1,
                 global_blocks: bool = False,
                 global_widths: Sequence[int] = (128, 256, 512, 1024),
                 reductions: Sequence[int] = (8, 4, 2, 1), head_dim: int = 8,
                 rank_channels: int = 8, hidden: int = 256,
                 decoder: Sequence[Sequence[int]] = ((64, 64), (128, 128), (256, 256, 256),
                                                     (512, 512, 512), (512, 512, 512)),
                 volume: str = "flat", reconstruction: bool = True):
        super().__init__()
        if volume not in ("flat", "frames"):
            raise ValueError(f"volume must be 'flat' or 'frames', got {volume!r}")
        if size % 2 ** len(decoder):
            raise ValueError(f"image size {size} is not a multiple of 2^{len(decoder)} "
                             "(the decoder's pooling stages)")
        self.frames, self.size, self.volume = frames, size, volume
        self.frame_encoder = FrameEncoder(size * size, stem, depths, widths, drop_path,
                                          global_blocks, global_widths, reductions, head_dim)
        self.classifier = RankPoolClassifier(num_classes, size, frames, rank_channels, hidden)
        self.num_features = rank_channels
        self.decoder = SegNetDecoder(rank_channels, decoder) if reconstruction else None

    @property
    def head(self) -> nn.Linear:
        """The last classification layer (the training loop reads its ``out_features``)."""
        return self.classifier.fc2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, S, S) frames -> the dynamic representation (B, rank_channels, S, S)."""
        b, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"FDP was built for {self.frames} frames, got {t}")
        if h != self.size or w != self.size:
            raise ValueError(f"FDP was built for {self.size} x {self.size} frames, got {h} x {w}")
        features = self.frame_encoder(x.reshape(b * t, 1, h, w)).reshape(b, t, h * w)
        if self.volume == "flat":      # the published row-major reshape
            volume = features.reshape(b, 1, h, w, t)
        else:                          # frame t at time index t
            volume = features.transpose(1, 2).reshape(b, 1, h, w, t)
        return self.classifier.dynamic(volume)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.forward_features(x)
        out = {"logits": self.forward_head(features)}
        if self.decoder is not None:
            out["reconstruction"] = torch.sigmoid(self.decoder(features))
        return out


# --------------------------------------------------------------------------- presets

PRESETS: dict[str, dict] = {
    # every size of the published code (fdp.py: FDP, Local_Global_Feature_Aware_Transformer
    # with stem_chs [64, 32, 64], depths [3, 4, 10, 3], path_dropout 0.1; CLS_Net; SegNet(8, 1))
    "published": {"stem": (64, 32, 64), "depths": (3, 4, 10, 3), "widths": (96, 192, 384, 768),
                  "drop_path": 0.1, "global_blocks": False,
                  "global_widths": (128, 256, 512, 1024), "reductions": (8, 4, 2, 1),
                  "head_dim": 8, "rank_channels": 8, "hidden": 256,
                  "decoder": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                              (512, 512, 512))},
    # the same structure with fewer and narrower blocks: the sample, `make repro` and CI
    "small": {"stem": (16, 8, 16), "depths": (1, 1, 1, 1), "widths": (16, 24, 32, 48),
              "global_widths": (128, 128, 128, 128), "rank_channels": 4, "hidden": 32,
              "decoder": ((8,), (16,), (16,))},
}

VARIANTS: dict[str, dict] = {
    "fdp": {},
    "fdp_no_reconstruction": {"reconstruction": False},
}


def build(variant: str = "fdp", num_classes: int = 3, preset: str = "published",
          **overrides) -> FDP:
    """A named FDP variant (the paper's ablation) at a named preset's sizes, with any argument
    overridden."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return FDP(num_classes=num_classes, **{**PRESETS[preset], **VARIANTS[variant], **overrides})


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
