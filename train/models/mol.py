"""MOL: joint estimation of micro-expression, optical flow and landmarks.

Shao, Cheng, Li, Zhou, Lu, Xie and Ma, "MOL: Joint Estimation of Micro-Expression, Optical
Flow, and Landmark via Transformer-Graph-Style Convolution" (IEEE TPAMI; code: github
CYF-cuber/MOL). Every size of the ``published`` preset is read from that code; ``small`` is
the same structure, narrower, for the sample and CI on a CPU.

A clip (B, T, S, S) of grey frames, read as T - 1 pairs of consecutive frames:
- a convolution stack (four convolutions, no normalisation, no activation; shared by all
  frames) -> per frame (C, s, s), s = 16 for S = 128;
- F5C blocks with separate weights for the first and the second frame of a pair (shared by
  the pairs): a fully-connected convolution (FCC: after Zhang et al., "ParC-Net", ECCV 2022,
  positional terms, batch norm and depthwise kernels as long as the map on circular padding,
  rows then columns for one half of the channels and columns then rows for the other, each
  with its residual) and a channel correspondence convolution (CCC: after Wang et al.,
  "Dynamic Graph CNN", TOG 2019; see ``ChannelCorrespondence``), added back;
- the MER head on the 2 (T - 1) pair features stacked in time, (B, C, s, s, 2 (T - 1)):
  Conv3d (2, 2, 5) stride (2, 2, 1), max-pool 2, dropout 0.5, FC 256, ReLU, dropout 0.5, FC;
- the flow network per pair: FlowNetC (Dosovitskiy et al., ICCV 2015) with batch norm and its
  own three-convolution encoder on the frames, a correlation of +-20 px at stride 2 on that
  encoder's 1/8 maps, joined by the pair's F5C features, and a decoder refining the flow up
  to the input: (B, T - 1, 2, S, S) in input pixels;
- the landmark predictor on the second frame's features: Conv 3x3 -> 32, ReLU, FC 512, ReLU,
  FC 136: (B, T - 1, 68, 2) for frames 1..T-1, in input pixels.
``forward`` returns a dict with ``logits`` and, when their heads are on, ``flow`` and
``landmarks``.

Differences from the published code, one row each (here; published; why; expected effect).
Nothing else in the model differs:

1. Crops and targets. Here: faces aligned and cropped once per clip by this project (144 px,
   random 128 crops in training, the centre at test; luma-equalised by default, faces knob
   ``equalise``); 68 landmarks mapped from MediaPipe's mesh; the store's Dual TV-L1 flows of
   the 144-px frames, cropped with them. Published: dlib detection, landmarks and alignment
   on every frame, tighter, no equalisation; TV-L1 computed on each crop. Why: one crop per
   clip keeps the motion the flow describes, and the stores serve all three models. Effect:
   other inputs, flows and landmark targets (the pupil distance is defined alike: eye
   centres of points 36-41 and 42-47); accuracy may move either way.
2. Intensities. Here: -1..1 per clip. Published: the training set's mean subtracted, divided
   by its maximum. Why: no statistics of a training set to carry. Effect: a scale the first
   convolution absorbs; none expected.
3. Folds. Here: this project's protocols (train/protocols.py, clip lists). Published: the
   authors' subject lists and per-subject files. Why: one protocol code for all models.
   Effect: other test clips where the lists differ.
4. Correlation. Here: plain PyTorch, one shifted product per displacement. Published: the
   compiled ``spatial_correlation_sampler``. Why: no extension to build. Effect: the same
   values (a test compares it with a loop); slower on a GPU.
5. Pairs. Here: the F5C blocks and the flow network run the T - 1 pairs as one batch, and
   the flow network's encoder runs once per frame (its maps shared by the two pairs a frame
   belongs to). Published: a Python loop over the pairs, encoding both frames of each pair
   apart. Why: fewer kernel launches, half the encoder's work. Effect: batch norm's training
   statistics pool all frames or pairs of a batch instead of one frame or pair at a time;
   the same values in evaluation.
6. Flow loss. Here: every clip of the batch. Published: its loop stops one clip short (an
   off-by-one in the bound). Why: the skip is a slip, not a choice. Effect: the flow term
   weighs B / (B - 1) of the published one (1.03 at batch 32).
7. The FCC's feed-forward branch. Here and published: declared, never applied. Why: kept so
   that the parameters and their weight decay match. Effect: none.
8. Landmark output. Published: ``permute(0, 2, 1)`` on the 2-D output, which fails as
   written. Here: the 136 outputs read as 68 (x, y) points. Effect: none.
9. Scoring. Here and published: the last step's model; every phase clip scored
   (``scoring: clip``; ``video`` averages a video's clips). The published log also reports
   the best epoch's accuracy on the test subject; its pooled confusion matrix, the reported
   metrics, is the last epoch's. Effect: none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POINTS = 68

# ---------------------------------------------------------------------------- blocks


def correlation(a: torch.Tensor, b: torch.Tensor, max_displacement: int,
                stride: int = 1) -> torch.Tensor:
    """FlowNet correlation: for each displacement (dy, dx) in {-d, -d + stride, ..., d}^2
    (row-major, dy outer) the channel mean of a(p) * b(p + (dy, dx)), zero outside b.
    (B, C, H, W) twice -> (B, (2 d / stride + 1)^2, H, W). One shifted product per
    displacement: memory stays O(B C H W)."""
    d = max_displacement
    h, w = a.shape[-2:]
    padded = F.pad(b, (d, d, d, d))
    steps = range(0, 2 * d + 1, stride)
    return torch.stack([(a * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1)
                        for dy in steps for dx in steps], dim=1)


def stack_side(size: int) -> int:
    """Side of the convolution stack's output for an input side ``size``."""
    side = (size - 4) // 2 + 1
    side = (side - 3) // 2 + 1
    return side // 2 + 1


class ConvStack(nn.Module):
    """Four plain convolutions (4x4/2, 3x3/2, 2x2/2 padded by 1, 1x1), no normalisation
    and no activation in between, as published: (N, 1, S, S) -> (N, C, s, s)."""

    def __init__(self, widths: tuple[int, int, int, int]):
        super().__init__()
        a, b, c, d = widths
        self.convs = nn.Sequential(nn.Conv2d(1, a, 4, 2), nn.Conv2d(a, b, 3, 2),
                                   nn.Conv2d(b, c, 2, 2, padding=1), nn.Conv2d(c, d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def _circular(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, axis: str
              ) -> torch.Tensor:
    """Depthwise convolution with a kernel as long as the ``axis`` ("h" or "w") on circular
    padding: every output sees its whole row or column."""
    n = x.shape[-2] if axis == "h" else x.shape[-1]
    if axis == "h":
        x, kernel = F.pad(x, (0, 0, 0, n - 1), mode="circular"), kernel[:, :, :n, :]
    else:
        x, kernel = F.pad(x, (0, n - 1, 0, 0), mode="circular"), kernel[:, :, :, :n]
    return F.conv2d(x, kernel, bias, groups=x.shape[1])


class FullyConnectedConv(nn.Module):
    """FCC on C channels split in two halves. Meta kernels and positional terms of length
    ``meta`` are cut to the map's side s. Half one: + positional term along rows, batch norm,
    the circular kernel along rows, + positional term along columns, the circular kernel
    along columns, + its input; half two the same with columns first.

    The published block also declares a 1x1 feed-forward branch (batch norm, 2C -> 2 -> 2C,
    Hardswish, dropouts) that its forward never applies; it is built here as well so that the
    parameters and their weight decay match, and it is not applied either."""

    def __init__(self, channels: int, meta: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"the FCC splits its channels in halves; got {channels}")
        half = self.half = channels // 2
        self.meta = meta
        self.norm1, self.norm2 = nn.BatchNorm2d(half), nn.BatchNorm2d(half)
        shapes = {"k1_h": (meta, 1), "k1_w": (1, meta), "k2_h": (meta, 1), "k2_w": (1, meta)}
        self.kernels = nn.ParameterDict()
        for name, shape in shapes.items():
            weight = torch.empty(half, 1, *shape)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))   # nn.Conv2d's default
            self.kernels[name] = nn.Parameter(weight)
        self.biases = nn.ParameterDict({n: nn.Parameter(torch.randn(half)) for n in shapes})
        self.positions = nn.ParameterDict({
            "p1_h": nn.Parameter(torch.randn(1, half, meta, 1)),
            "p1_w": nn.Parameter(torch.randn(1, half, 1, meta)),
            "p2_h": nn.Parameter(torch.randn(1, half, meta, 1)),
            "p2_w": nn.Parameter(torch.randn(1, half, 1, meta))})
        self.ffn = nn.Sequential(nn.BatchNorm2d(channels), nn.Conv2d(channels, 2, 1),
                                 nn.Hardswish(), nn.Dropout(0.0), nn.Conv2d(2, channels, 1),
                                 nn.Dropout(0.1))

    def _position(self, name: str, side: int) -> torch.Tensor:
        p = self.positions[name]
        p = p[:, :, :side, :] if name.endswith("h") else p[:, :, :, :side]
        return p.expand(1, self.half, side, side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if x.shape[-2] != side or side > self.meta:
            raise ValueError(f"the FCC needs square maps of side <= {self.meta}; got "
                             f"{tuple(x.shape[-2:])}")
        k, b = self.kernels, self.biases
        x1, x2 = torch.chunk(x, 2, dim=1)
        y1 = self.norm1(x1 + self._position("p1_h", side))
        y2 = self.norm2(x2 + self._position("p1_w", side))
        y1 = _circular(y1, k["k1_h"], b["k1_h"], "h") + self._position("p2_w", side)
        y2 = _circular(y2, k["k1_w"], b["k1_w"], "w") + self._position("p2_h", side)
        y1 = _circular(y1, k["k2_w"], b["k2_w"], "w")
        y2 = _circular(y2, k["k2_h"], b["k2_h"], "h")
        return torch.cat([x1 + y1, x2 + y2], dim=1)


class ChannelCorrespondence(nn.Module):
    """CCC as published. Each channel is a node whose feature is its flattened map (length
    N = s * s). The neighbour sets come from the positions: for each position p its
    ``neighbours`` most cosine-similar positions q_1..q_k (over the C channels; p itself
    first). Node c's j-th neighbour feature is the difference map d_j(p) = x_c(q_j(p)) -
    x_c(p); the edge value is ReLU(theta(x_c) + phi(d_j - x_c)) with theta, phi linear maps
    N -> N (the published 1 -> N Conv1d with a kernel of length N), max-pooled over j.
    Returns (B, C, s, s); the F5C block adds it to its input."""

    def __init__(self, side: int, neighbours: int):
        super().__init__()
        n = side * side
        self.neighbours = neighbours
        self.theta = nn.Linear(n, n)
        self.phi = nn.Linear(n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        nodes = x.flatten(2)                                            # (B, C, N)
        if nodes.shape[-1] != self.theta.in_features:
            raise ValueError(f"the CCC was built for {self.theta.in_features} positions; "
                             f"got {h} x {w}")
        k = min(self.neighbours, h * w)
        unit = F.normalize(nodes, dim=1)
        index = torch.bmm(unit.transpose(1, 2), unit).topk(k, dim=-1).indices   # (B, N, k)
        gathered = torch.gather(nodes, 2, index.flatten(1)[:, None].expand(b, c, -1))
        difference = gathered.view(b, c, h * w, k) - nodes[..., None]          # (B, C, N, k)
        edges = self.theta(nodes)[:, :, None] + self.phi(
            (difference - nodes[..., None]).transpose(2, 3))                     # (B, C, k, N)
        return F.relu(edges).amax(dim=2).view(b, c, h, w)


class F5C(nn.Module):
    """One F5C block: y = FCC(x); y + CCC(y)."""

    def __init__(self, channels: int, side: int, meta: int, neighbours: int):
        super().__init__()
        self.fcc = FullyConnectedConv(channels, meta)
        self.ccc = ChannelCorrespondence(side, neighbours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fcc(x)
        return x + self.ccc(x)


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1, inplace=True))


def _deconv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                         nn.LeakyReLU(0.1, inplace=True))


def _crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x[:, :, :like.shape[2], :like.shape[3]]


class FlowNet(nn.Module):
    """FlowNetC with batch norm, per pair of consecutive frames: its own encoder (6x6/2,
    4x4/2, 2x2/2 at widths w, 2w, 4w) on each frame, the correlation of the two 1/8 maps
    (``max_displacement`` and ``stride`` in those maps' pixels, divided by C, LeakyReLU
    0.1), a 1x1 redirect of the
    first frame's map (w/2), and ``extra`` channels of the pair's F5C features; then
    3x3 convolutions down to 1/64 (4w, 8w, 8w, 16w) and six deconvolution steps, each
    predicting a flow and refining it, to (2, S, S). The published sizes are w = 64,
    +-20 at stride 2 (441 correlation channels), extra = 256."""

    def __init__(self, width: int, extra: int, max_displacement: int, stride: int):
        super().__init__()
        w = width
        self.max_displacement, self.stride = max_displacement, stride
        cost = (2 * (max_displacement // stride) + 1) ** 2
        self.conv1, self.conv2, self.conv3 = _conv(1, w, 6, 2), _conv(w, 2 * w, 4, 2), \
            _conv(2 * w, 4 * w, 2, 2)
        self.redirect = _conv(4 * w, w // 2, 1)
        self.conv3_1 = _conv(w // 2 + cost + extra, 4 * w)
        self.conv4, self.conv4_1 = _conv(4 * w, 8 * w, stride=2), _conv(8 * w, 8 * w)
        self.conv5, self.conv5_1 = _conv(8 * w, 8 * w, stride=2), _conv(8 * w, 8 * w)
        self.conv6, self.conv6_1 = _conv(8 * w, 16 * w, stride=2), _conv(16 * w, 16 * w)
        # decoder, coarse to fine: (skip channels, deconvolution output) per level 5..0
        skips = [8 * w, 8 * w, 4 * w, 2 * w, w, 1]
        outs = [8 * w, 4 * w, 2 * w, 2 * w, w, w // 2]
        ins = [16 * w] + [s + o + 2 for s, o in zip(skips[:-1], outs[:-1], strict=True)]
        self.deconvs = nn.ModuleList(_deconv(i, o) for i, o in zip(ins, outs, strict=True))
        self.predicts = nn.ModuleList(nn.Conv2d(i, 2, 3, 1, 1, bias=False)
                                      for i in [*ins, skips[-1] + outs[-1] + 2])
        self.upsamples = nn.ModuleList(nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)
                                       for _ in outs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, 0.1)

    def forward(self, frames: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``frames`` (B, T, S, S) and the pairs' F5C features (B (T - 1), extra, s, s) ->
        each pair's flow (B, T - 1, 2, S, S). The encoder runs once per frame; a pair
        takes its frames' maps."""
        b, t, h, w = frames.shape
        a1 = self.conv1(frames.reshape(b * t, 1, h, w))
        a2 = self.conv2(a1)
        a3 = self.conv3(a2)
        if a3.shape[-2:] != features.shape[-2:]:
            raise ValueError(f"the flow network's 1/8 maps {tuple(a3.shape[-2:])} and the "
                             f"features {tuple(features.shape[-2:])} differ in size")

        def first(m: torch.Tensor) -> torch.Tensor:   # the first frame of each pair
            return m.view(b, t, *m.shape[1:])[:, :-1].flatten(0, 1)

        second = a3.view(b, t, *a3.shape[1:])[:, 1:].flatten(0, 1)
        a1, a2, a3 = first(a1), first(a2), first(a3)
        cost = F.leaky_relu(correlation(a3, second, self.max_displacement, self.stride), 0.1)
        c3 = self.conv3_1(torch.cat([self.redirect(a3), cost, features], dim=1))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        x = self.conv6_1(self.conv6(c5))
        skips = [c5, c4, c3, a2, a1, first(frames.reshape(b * t, 1, h, w))]
        for deconv, predict, upsample, skip in zip(self.deconvs, self.predicts[:-1],
                                                   self.upsamples, skips, strict=True):
            flow = predict(x)
            x = torch.cat([skip, _crop(deconv(x), skip), _crop(upsample(flow), skip)], dim=1)
        return self.predicts[-1](x).view(b, t - 1, 2, h, w)


class LandmarkPredictor(nn.Module):
    """Conv 3x3 (no padding) -> ``reduced`` channels, ReLU, FC ``hidden``, ReLU, FC 136:
    68 (x, y) points in input pixels."""

    def __init__(self, channels: int, side: int, reduced: int, hidden: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, reduced, 3)
        self.fc1 = nn.Linear(reduced * (side - 2) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, POINTS * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x)).flatten(1)
        return self.fc2(F.relu(self.fc1(x))).view(-1, POINTS, 2)


class MERHead(nn.Module):
    """(B, C, s, s, 2 (T - 1)) -> Conv3d (2, 2, 5) stride (2, 2, 1) to ``channels``, max-pool
    2, dropout, flatten, FC ``hidden``, ReLU, dropout, FC classes."""

    def __init__(self, channels_in: int, side: int, steps: int, num_classes: int,
                 channels: int, hidden: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv3d(channels_in, channels, (2, 2, 5), (2, 2, 1))
        self.pool = nn.MaxPool3d(2)
        self.dropout = nn.Dropout(dropout)
        s, t = ((side - 2) // 2 + 1) // 2, (steps - 4) // 2
        if s < 1 or t < 1:
            raise ValueError(f"the MER head needs maps of side >= 4 and >= 6 stacked steps; "
                             f"got side {side} and {steps} steps")
        self.fc1 = nn.Linear(channels * s * s * t, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.pool(self.conv(x))).flatten(1)
        return self.head(self.dropout(F.relu(self.fc1(x))))


# ----------------------------------------------------------------------------- model


class MOL(nn.Module):
    def __init__(self, num_classes: int = 3, frames: int = 8, size: int = 128,
                 stack: tuple[int, int, int, int] = (8, 32, 64, 128), meta: int = 32,
                 neighbours: int = 4, flow_width: int = 64, max_displacement: int = 20,
                 stride: int = 2, landmark_channels: int = 32, landmark_hidden: int = 512,
                 mer_channels: int = 32, mer_hidden: int = 256, dropout: float = 0.5,
                 flow: bool = True, landmarks: bool = True):
        super().__init__()
        side = stack_side(size)
        if side < 4:
            raise ValueError(f"MOL's input side must be at least 32; got {size}")
        if side > meta:
            raise ValueError(f"MOL at input side {size} has maps of side {side}, more than "
                             f"its FCC kernels' {meta}")
        channels = stack[-1]
        self.frames, self.size, self.side = frames, size, side
        self.stack = ConvStack(tuple(stack))
        self.first = F5C(channels, side, meta, neighbours)    # first frame of a pair
        self.second = F5C(channels, side, meta, neighbours)   # second frame of a pair
        self.mer = MERHead(channels, side, 2 * (frames - 1), num_classes, mer_channels,
                           mer_hidden, dropout)
        self.head = self.mer.head           # the classifier (the loop reads out_features)
        self.flow = FlowNet(flow_width, 2 * channels, max_displacement, stride) if flow \
            else None
        self.landmarks = LandmarkPredictor(channels, side, landmark_channels,
                                           landmark_hidden) if landmarks else None

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, S, S) frames -> the pairs' F5C features, first and second frames, each
        (B, T - 1, C, s, s)."""
        b, t, h, w = x.shape
        if t != self.frames or h != self.size or w != self.size:
            raise ValueError(f"MOL was built for ({self.frames}, {self.size}, {self.size}) "
                             f"clips, got {(t, h, w)}")
        maps = self.stack(x.reshape(b * t, 1, h, w)).view(b, t, -1, self.side, self.side)
        first = self.first(maps[:, :-1].flatten(0, 1))
        second = self.second(maps[:, 1:].flatten(0, 1))
        return first.view(b, t - 1, *first.shape[1:]), second.view(b, t - 1, *first.shape[1:])

    def forward_head(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Pair features -> class logits; time order f_0, s_0, f_1, s_1, ... as published."""
        cross = torch.stack([first, second], dim=2).flatten(1, 2)   # (B, 2 (T-1), C, s, s)
        return self.mer(cross.permute(0, 2, 3, 4, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        first, second = self.forward_features(x)
        b, pairs = first.shape[:2]
        out = {"logits": self.forward_head(first, second)}
        if self.flow is not None:
            out["flow"] = self.flow(x, torch.cat([first, second], dim=2).flatten(0, 1))
        if self.landmarks is not None:
            out["landmarks"] = self.landmarks(second.flatten(0, 1)).view(b, pairs, POINTS, 2)
        return out


# --------------------------------------------------------------------- presets, variants

PRESETS: dict[str, dict] = {
    # every size from the published code (MOL_model.py, modules/*.py)
    "published": {"stack": (8, 32, 64, 128), "meta": 32, "flow_width": 64,
                  "max_displacement": 20, "stride": 2, "landmark_channels": 32,
                  "landmark_hidden": 512, "mer_channels": 32, "mer_hidden": 256},
    # the same structure, narrower, for 32-px inputs (4 x 4 maps) on a CPU
    "small": {"stack": (2, 4, 8, 8), "meta": 4, "flow_width": 4, "max_displacement": 2,
              "stride": 1, "landmark_channels": 8, "landmark_hidden": 64, "mer_channels": 8,
              "mer_hidden": 32},
}

VARIANTS: dict[str, dict] = {
    "mol": {},
    "mol_no_flow": {"flow": False},
    "mol_no_landmarks": {"landmarks": False},
    "mol_mer_only": {"flow": False, "landmarks": False},
}


def build(variant: str = "mol", num_classes: int = 3, preset: str = "published",
          **overrides) -> MOL:
    """A named MOL variant (the paper's ablations) at a named preset, with any argument
    overridden."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown MOL preset {preset!r}; known: {', '.join(PRESETS)}")
    return MOL(num_classes=num_classes, **{**PRESETS[preset], **VARIANTS[variant], **overrides})
