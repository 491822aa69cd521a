"""Training one fold: Adam without a scheduler over a model's inputs adapter (MEGANet: focal
loss, flip and rotation augmentation; FDP and MOL: their own losses and inputs)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .inputs import Inputs, as_inputs, video_means
from .losses import focal_loss  # noqa: F401  (the benchmark times the loss from here)
from .metrics import scores


def predict(model: nn.Module, x: torch.Tensor | Inputs, device: torch.device, batch_size: int,
            channels_last: bool, pool: bool = True) -> np.ndarray:
    """Class probabilities (N, K) per video in evaluation mode: the mean over a video's
    samples (MOL's phase clips), so each video counts once; ``pool`` false: one row per
    sample, in ``samples(train=False)`` order."""
    inputs = as_inputs(x)
    samples = inputs.samples(train=False)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = inputs.batch(samples[start:start + batch_size], False, None)["input"]
            batch = batch.to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(inputs.logits(model(batch)), dim=1).cpu())
    if not out:
        return np.zeros((0, 0))
    probabilities = torch.cat(out).numpy()
    return video_means(probabilities, samples[:, 0], len(inputs)) if pool else probabilities


def train_fold(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, train: np.ndarray,
               validation: np.ndarray, *, epochs: int, batch_size: int, lr: float,
               weight_decay: float, gamma: float, seed: int, device: torch.device,
               channels_last: bool, log: Callable[[dict], None], steps: int = 0,
               optimiser: str = "adam") -> nn.Module:
    """Train on ``train``; keep the last epoch's model, or the best on ``validation``.

    ``x`` is MEGANet's image tensor or a model's inputs adapter (train/inputs.py). With
    ``steps`` > 0 training stops after that many optimiser steps (``epochs`` is ignored).
    The test fold never reaches this function, so it cannot pick the model.
    ``optimiser`` "adamw" decouples the weight decay (MOL's published setting).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    inputs = as_inputs(x, y)
    training = inputs[train]
    samples = training.samples(train=True)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimiser = (torch.optim.AdamW if optimiser == "adamw" else torch.optim.Adam)(
        model.parameters(), lr=lr, weight_decay=weight_decay)
    n_classes = model.head.out_features
    best, best_score, done = None, -1.0, 0
    for epoch in itertools.count(1):
        if (steps and done >= steps) or (not steps and epoch > epochs):
            break
        model.train()
        order = samples[torch.randperm(len(samples), generator=generator).numpy()]
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if steps and done >= steps:
                break
            if len(index) < 2:  # batch norm needs two samples
                continue
            batch = {k: v.to(device) for k, v in training.batch(index, True, generator).items()}
            if channels_last:
                batch["input"] = batch["input"].contiguous(memory_format=torch.channels_last)
            output = model(batch["input"])
            loss = training.loss(output, batch, gamma)
            logits = training.logits(output)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            done += 1
            total += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == batch["label"]).sum())
            seen += len(index)
        if steps and not seen:
            raise ValueError(f"no training batch of two samples from {len(samples)} samples")
        row = {"epoch": epoch, "loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}
        if len(validation):
            probabilities = predict(model, inputs[validation], device, batch_size, channels_last)
            row["validation_uf1"] = scores(y[validation].numpy(), probabilities.argmax(1),
                                           n_classes)["UF1"]
            if row["validation_uf1"] > best_score:
                best_score, best = row["validation_uf1"], copy.deepcopy(model.state_dict())
        log(row)
    if best is not None:
        model.load_state_dict(best)
    return model
