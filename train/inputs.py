"""What each model reads from the stores, how a batch is made and what it is trained on.

One adapter per model keeps the training loop one loop:
- ``meganet``: one modality image per clip from a modality store (train/data.py), random
  flips and rotations in training, focal loss.
- ``fdp``: phase 0 of a sequences store, T grey frames resized to ``size`` (area), scaled to
  -1..1 (Normalize(0.5, 0.5)); target the frames' dynamic image (Bilen's approximate rank
  pooling over running means, min-max scaled, as published); NLL + 100 * MSE.
- ``mol``: every phase of a sequences store is a clip; frames cropped from S to ``crop``
  (``train_crops`` random crops per phase clip in training, the centre at test: (8, 8) for
  144 -> 128), optionally resized to ``size``; targets the store's TV-L1 flows and 68-point
  landmarks (moved and scaled with the crop); NLL + flow and landmark terms.

A sample is one row (video, part): for MEGANet and FDP the part is 0, for MOL a phase.
Prediction averages a video's sample probabilities (``video_means``), so a video with
many phases still counts once in the metrics; MOL with ``scoring: clip`` (its published
evaluation) scores every phase clip instead (``scored_rows``). An adapter indexed with
video positions (``inputs[fold.test]``) is the same adapter restricted to those videos.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from mesti.pipeline.stores.read import open_store
from torch import nn

from .data import BAD_CLIP_POLICIES, THREE_CLASSES, BadClip, ClipTable, augment
from .losses import fdp_loss, focal_loss, mol_loss
from .models import fdp as fdp_model
from .models import meganet as meganet_model
from .models import mol as mol_model

MODELS = ("meganet", "fdp", "mol")


@dataclass(frozen=True)
class FDPConfig:
    """Knobs of FDP (params.yaml section ``fdp``); defaults are the published settings
    (CYF-cuber/FDP train.py: Adam lr 1e-4, weight decay 1e-3, batch 36, 500 steps, loss
    NLL + 100 * MSE) and the published architecture (preset ``published``)."""

    preset: str = "published"         # sizes of train/models/fdp.py PRESETS: published | small
    size: int = 64                    # frames resized to size x size
    steps: int = 500                  # optimiser steps per fold
    batch_size: int = 36
    lr: float = 1e-4
    weight_decay: float = 1e-3
    reconstruction: bool = True       # false: the paper's ablation without the DI head
    reconstruction_weight: float = 100.0
    volume: str = "flat"              # flat (the published reshape) | frames (see fdp.py)

    def __post_init__(self) -> None:
        if self.preset not in fdp_model.PRESETS:
            raise ValueError(f"preset must be one of {sorted(fdp_model.PRESETS)}, "
                             f"got {self.preset!r}")
        if self.volume not in ("flat", "frames"):
            raise ValueError(f"volume must be flat or frames, got {self.volume!r}")
        depth = len(fdp_model.PRESETS[self.preset]["decoder"])
        if self.size <= 0 or self.size % 2 ** depth:
            raise ValueError(f"size must be a positive multiple of {2 ** depth} (the "
                             f"{self.preset} decoder's pooling stages), got {self.size}")

    def build(self, num_classes: int, frames: int = 8) -> nn.Module:
        return fdp_model.build("fdp", num_classes, self.preset, frames=frames, size=self.size,
                               volume=self.volume, reconstruction=self.reconstruction)


@dataclass(frozen=True)
class MOLConfig:
    """Knobs of MOL (params.yaml section ``mol``); defaults are the published settings
    (CYF-cuber/MOL: README, main.py, train.py, test.py)."""

    preset: str = "published"         # architecture sizes (train/models/mol.py PRESETS)
    crop: int = 128                   # crop side from the store's S (144)
    size: int = 128                   # network input side after the crop (resize if smaller)
    train_crops: int = 5              # random crops per phase clip and epoch in training
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-3        # decoupled (AdamW), as published
    optimiser: str = "adamw"          # adamw (published) or adam (L2 in the gradient)
    flow: bool = True                 # false: ablation without the flow head
    landmarks: bool = True            # false: ablation without the landmark head
    flow_weight: float = 0.5
    landmark_weight: float = 0.5
    neighbours: int = 4               # k of the CCC's kNN graph
    scoring: str = "clip"             # clip: each phase clip scored (published); video: mean

    def __post_init__(self) -> None:
        if self.preset not in mol_model.PRESETS:
            raise ValueError(f"mol.preset {self.preset!r} is not one of "
                             f"{', '.join(mol_model.PRESETS)}")
        if self.scoring not in ("clip", "video"):
            raise ValueError(f"mol.scoring {self.scoring!r} is not clip or video")
        if self.optimiser not in ("adam", "adamw"):
            raise ValueError(f"mol.optimiser {self.optimiser!r} is not adam or adamw")

    def build(self, num_classes: int, frames: int = 8) -> nn.Module:
        return mol_model.build("mol", num_classes, preset=self.preset, frames=frames,
                               size=self.size, neighbours=self.neighbours, flow=self.flow,
                               landmarks=self.landmarks)


MODEL_CONFIGS = {"fdp": FDPConfig, "mol": MOLConfig}


def video_means(probabilities: np.ndarray, videos: np.ndarray, n_videos: int) -> np.ndarray:
    """Mean probability per video of per-sample probabilities (N, K); ``videos`` (N,) gives
    each sample's video in 0..n_videos-1. Every video must have a sample."""
    sums = np.zeros((n_videos, probabilities.shape[1]))
    np.add.at(sums, videos, probabilities)
    counts = np.bincount(videos, minlength=n_videos)
    if (counts == 0).any():
        raise ValueError(f"videos without a sample: {np.flatnonzero(counts == 0).tolist()}")
    return sums / counts[:, None]


def scored_rows(table: ClipTable, inputs: Inputs | None
                ) -> tuple[ClipTable, Callable[[np.ndarray], np.ndarray]]:
    """The rows a run scores and writes, and a map from video positions to their rows.

    Per video (MEGANet, FDP, MOL with ``scoring: video``): the table itself. MOL with
    ``scoring: clip`` (published): one row per phase clip, the video's row repeated with
    ``_p<phase>`` appended to its clip id, in the order ``samples(train=False)`` and
    ``predict(..., pool=False)`` give them."""
    if not (isinstance(inputs, MOLInputs) and inputs.config.scoring == "clip"):
        return table, lambda videos: np.asarray(videos)
    phases = np.array([len(inputs.clips[v]["frames"]) for v in inputs.videos])
    start = np.concatenate([[0], np.cumsum(phases)[:-1]])
    video = np.repeat(np.arange(len(phases)), phases)
    phase = np.arange(len(video)) - start[video]
    scored = table.subset(video)
    scored.clip_ids = np.array([f"{c}_p{p}" for c, p in zip(scored.clip_ids, phase,
                                                              strict=True)])
    return scored, lambda videos: np.concatenate(
        [start[v] + np.arange(phases[v]) for v in videos] or [np.zeros(0, np.int64)])


class Inputs:
    """A model's samples of a set of videos (the base holds labels and the video subset)."""

    def __init__(self, labels: torch.Tensor | None, n_videos: int):
        self.labels = labels
        self.videos = np.arange(n_videos)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: np.ndarray) -> Inputs:
        subset = copy.copy(self)
        subset.videos = self.videos[np.asarray(index)]
        return subset

    def build(self, variant: str, num_classes: int) -> nn.Module:
        """A fresh network for these inputs."""
        raise NotImplementedError

    def settings(self, train) -> dict:
        """The loop's optimiser settings: the model's own section (``steps`` optimiser steps,
        its batch size, lr, weight decay) unless the model is MEGANet (section ``train``)."""
        config = self.config
        return {"epochs": 0, "steps": config.steps, "batch_size": config.batch_size,
                "lr": config.lr, "weight_decay": config.weight_decay, "gamma": 0.0,
                "channels_last": False}

    def samples(self, train: bool) -> np.ndarray:
        """(n, 2) rows (video position in this subset, part); one per video here."""
        return np.stack([np.arange(len(self)), np.zeros(len(self), np.int64)], axis=1)

    def batch(self, samples: np.ndarray, train: bool,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The rows' tensors: ``input``, and with labels ``label`` and the model's targets;
        random augmentation or crops only in training (drawn from ``generator``)."""
        raise NotImplementedError

    def loss(self, output, batch: dict[str, torch.Tensor], gamma: float) -> torch.Tensor:
        """The model's training loss of one batch (``gamma``: MEGANet's focal loss)."""
        raise NotImplementedError

    @staticmethod
    def logits(output) -> torch.Tensor:
        return output["logits"] if isinstance(output, dict) else output

    def _labels(self, samples: np.ndarray) -> dict[str, torch.Tensor]:
        if self.labels is None:
            return {}
        return {"label": self.labels[self.videos[samples[:, 0]]]}


class ImageInputs(Inputs):
    """MEGANet: images (N, C, S, S) in -1..1."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None,
                 switches: dict | None = None, augment: bool = True):
        super().__init__(labels, len(x))
        self.x, self.switches, self.augment = x, switches or {}, augment

    def build(self, variant, num_classes):
        return meganet_model.build(variant, num_classes, **self.switches)

    def settings(self, train):
        return {"epochs": train.epochs, "steps": 0, "batch_size": train.batch_size,
                "lr": train.lr, "weight_decay": train.weight_decay, "gamma": train.gamma,
                "channels_last": train.channels_last}

    def batch(self, samples, train, generator):
        images = self.x[self.videos[samples[:, 0]]]
        return {"input": augment(images, generator) if train and self.augment else images,
                **self._labels(samples)}

    def loss(self, output, batch, gamma):
        return focal_loss(output, batch["label"], gamma)


class FDPInputs(Inputs):
    """FDP: frames (N, T, s, s) uint8 and their dynamic images (N, 1, s, s) in 0..1."""

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, config: FDPConfig):
        super().__init__(labels, len(frames))
        self.frames, self.config = frames, config
        self.targets = torch.cat([fdp_model.dynamic_image_target(frames[i:i + 64].float())
                                  for i in range(0, len(frames), 64)])

    def build(self, variant, num_classes):
        return self.config.build(num_classes, self.frames.shape[1])

    def batch(self, samples, train, generator):
        rows = self.videos[samples[:, 0]]
        return {"input": self.frames[rows].float().div_(127.5).sub_(1.0),
                "dynamic_image": self.targets[rows], **self._labels(samples)}

    def loss(self, output, batch, gamma):
        return fdp_loss(output, batch["label"], batch["dynamic_image"],
                        self.config.reconstruction_weight)


class MOLInputs(Inputs):
    """MOL: per video its phase clips (P, T, S, S) uint8, flows, landmarks, pupil distances."""

    def __init__(self, clips: list[dict[str, np.ndarray]], labels: torch.Tensor,
                 config: MOLConfig):
        super().__init__(labels, len(clips))
        self.clips, self.config = clips, config

    def build(self, variant, num_classes):
        return self.config.build(num_classes, self.clips[0]["frames"].shape[1])

    def samples(self, train: bool) -> np.ndarray:
        repeat = self.config.train_crops if train else 1
        return np.array([(v, p) for v in range(len(self)) for p in
                         range(len(self.clips[self.videos[v]]["frames"])) for _ in range(repeat)],
                        np.int64).reshape(-1, 2)

    def batch(self, samples, train, generator):
        c, size = self.config.crop, self.config.size
        parts = {"input": [], "flow": [], "landmarks": [], "pupil_distance": []}
        for video, phase in samples:
            clip = self.clips[self.videos[video]]
            side = clip["frames"].shape[-1]
            if train:
                y0, x0 = (int(v) for v in torch.randint(side - c + 1, (2,), generator=generator))
            else:
                y0 = x0 = (side - c) // 2
            parts["input"].append(torch.from_numpy(clip["frames"][phase, :, y0:y0 + c,
                                                                  x0:x0 + c].copy()))
            if "flow" in clip:
                flow = clip["flow"][phase, :, y0:y0 + c, x0:x0 + c].astype(np.float32)
                parts["flow"].append(torch.from_numpy(flow).permute(0, 3, 1, 2))
            shifted = clip["landmarks"][phase] - np.array([x0, y0], np.float32)
            parts["landmarks"].append(torch.from_numpy(shifted))
            parts["pupil_distance"].append(torch.from_numpy(clip["pupil_distance"][phase]))
        scale = size / c
        frames = torch.stack(parts["input"]).float().div_(127.5).sub_(1.0)
        batch = {"input": _resize(frames, size),
                 "landmarks": torch.stack(parts["landmarks"]) * scale,
                 "pupil_distance": torch.stack(parts["pupil_distance"]) * scale,
                 **self._labels(samples)}
        if parts["flow"]:
            flow = torch.stack(parts["flow"])                       # (B, T-1, 2, c, c)
            batch["flow"] = _resize(flow.flatten(1, 2), size).view(*flow.shape[:3], size,
                                                                   size) * scale
        return batch

    def settings(self, train) -> dict:
        return {**super().settings(train), "optimiser": self.config.optimiser}

    def loss(self, output, batch, gamma):
        return mol_loss(output, batch["label"], batch.get("flow"), batch["landmarks"],
                        batch["pupil_distance"], self.config.flow_weight,
                        self.config.landmark_weight)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


def load_inputs(stores: list[str], model: str, label_set: int,
                config: FDPConfig | MOLConfig | None = None,
                select: Callable[[ClipTable], ClipTable] | None = None,
                on_bad_clip: str = "skip") -> tuple[ClipTable, Inputs]:
    """A sequence model's clip table (one row per video) and its adapter over it (MEGANet's
    images come from ``run.prepare_table``).

    ``select`` narrows the loaded table (a clip list, one label vocabulary) before the
    adapter is built, so the adapter holds exactly the table's clips and labels.
    """
    if model not in MODEL_CONFIGS:
        raise ValueError(f"unknown sequence model {model!r}; known: {', '.join(MODEL_CONFIGS)}")
    config = config or MODEL_CONFIGS[model]()
    table, clips = load_sequences(stores, label_set, on_bad_clip=on_bad_clip)
    if select:
        table = select(table)
        if table.rows is not None:
            clips = [clips[i] for i in table.rows]
    labels = torch.from_numpy(table.labels)
    lengths = np.array([c["frames"].shape[1] for c in clips])
    if (lengths != lengths[0]).any():
        odd = table.clip_ids[lengths != lengths[0]].tolist()
        raise ValueError(f"clips {odd} hold sequences of another length than {lengths[0]} "
                         f"frames ({table.clip_ids[0]}); one run needs one length")
    if model == "fdp":
        phase0 = torch.from_numpy(np.stack([c["frames"][0] for c in clips]))
        small = torch.cat([_resize(phase0[i:i + 64].float(), config.size)
                           for i in range(0, len(phase0), 64)])
        return table, FDPInputs(small.round().clamp(0, 255).to(torch.uint8), labels, config)
    for clip_id, clip in zip(table.clip_ids, clips, strict=True):
        side = clip["frames"].shape[-1]
        if side < config.crop:
            raise ValueError(f"clip {clip_id}: frames of side {side} are smaller than the "
                             f"crop {config.crop}")
        if not (np.isfinite(clip["landmarks"]).all()
                and np.isfinite(clip["pupil_distance"]).all()):
            raise ValueError(f"clip {clip_id}: landmarks or pupil distances that are not "
                             "finite; MOL's landmark loss needs them")
        if config.flow and "flow" not in clip:
            raise ValueError(f"clip {clip_id}: the store has no flow (sequences knob flow: "
                             "true), and MOL's flow head needs it (mol.flow: false drops it)")
    return table, MOLInputs(clips, labels, config)


def load_sequences(stores: list[str], label_set: int,
                   on_bad_clip: str = "skip") -> tuple[ClipTable, list[dict]]:
    """Labelled clips of sequences stores, in store order, with their arrays by name.

    A listed clip that cannot be used (group deleted, an array missing, a corrupt chunk, a
    content key that no longer matches its attributes: a label edited by hand) is left out
    and named on stderr and in ``skipped``, or stops the run with BadClip (``on_bad_clip``),
    as ``data.load_clips`` does for modality stores.
    """
    if label_set not in (3, 5):
        raise ValueError("label_set must be 3 or 5")
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, not {on_bad_clip!r}")
    field = f"label{label_set}"
    names, ids, subjects, datasets, clips, skipped = [], [], [], [], [], []
    for location in stores:
        store = open_store(location)
        if store.kind != "sequences":
            raise ValueError(f"{location} is a {store.kind} store; fdp and mol read a "
                             "sequences store")
        for clip_id in store.clip_ids:
            try:
                attrs = store.clip_attrs(clip_id)
                if not attrs.get(field):
                    continue
                clip = store.sequence(clip_id)
            except Exception as error:  # group missing, key mismatch, chunk unreadable
                why = f"{location}: clip {clip_id}: unreadable, {type(error).__name__}: {error}"
                if on_bad_clip == "stop":
                    raise BadClip(f"{why} (train.on_bad_clip: stop)") from error
                print(f"skipped {why}", file=sys.stderr)
                skipped.append(why)
                continue
            clips.append(clip)
            names.append(attrs[field])
            ids.append(clip_id)
            subjects.append(f"{attrs['dataset']}/{attrs['subject']}")
            datasets.append(attrs["dataset"])
    if not ids:
        raise ValueError(f"no clip in {stores} has a {label_set}-class label")
    classes = list(THREE_CLASSES) if label_set == 3 else sorted(set(names))
    table = ClipTable(images=None, labels=np.array([classes.index(n) for n in names]),
                      classes=classes, clip_ids=np.array(ids), subjects=np.array(subjects),
                      datasets=np.array(datasets), skipped=skipped)
    return table, clips


def as_inputs(x: torch.Tensor | Inputs, labels: torch.Tensor | None = None) -> Inputs:
    """An adapter as is; a tensor of images as MEGANet's."""
    return x if isinstance(x, Inputs) else ImageInputs(x, labels)
