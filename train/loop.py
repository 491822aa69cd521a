"""Training one fold: focal loss, Adam without a scheduler, flip and rotation augmentation."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import augment
from .metrics import scores


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean of -(1 - p_t)^gamma log p_t (Lin et al., ICCV 2017); gamma 0 is cross-entropy."""
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int,
            channels_last: bool) -> np.ndarray:
    """Class probabilities (N, K) in evaluation mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(model(batch), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def train_fold(model: nn.Module, x: torch.Tensor, y: torch.Tensor, train: np.ndarray,
               validation: np.ndarray, *, epochs: int, batch_size: int, lr: float,
               weight_decay: float, gamma: float, seed: int, device: torch.device,
               channels_last: bool, log: Callable[[dict], None],
               online_augment: bool = True) -> nn.Module:
    """Train on ``train``; keep the last epoch's model, or the best on ``validation``.

    ``online_augment`` draws a random flip and rotation per image and batch; switch it off
    when ``train`` already indexes an offline expanded set.

    The test fold never reaches this function, so it cannot pick the model.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n_classes = model.head.out_features
    best, best_score = None, -1.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:  # batch norm needs two samples
                continue
            batch = (augment(x[index], generator) if online_augment else x[index]).to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            target = y[index].to(device)
            logits = model(batch)
            loss = focal_loss(logits, target, gamma)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == target).sum())
            seen += len(index)
        row = {"epoch": epoch, "loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}
        if len(validation):
            probabilities = predict(model, x[validation], device, batch_size, channels_last)
            row["validation_uf1"] = scores(y[validation].numpy(), probabilities.argmax(1),
                                           n_classes)["UF1"]
            if row["validation_uf1"] > best_score:
                best_score, best = row["validation_uf1"], copy.deepcopy(model.state_dict())
        log(row)
    if best is not None:
        model.load_state_dict(best)
    return model
