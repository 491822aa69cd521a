"""Each model's training loss: pure functions of the model's output dict and the targets.

- MEGANet: focal loss (Lin et al., ICCV 2017).
- FDP: NLL of the classes + 100 * MSE of the reconstructed dynamic image against its target
  (the published uint8 dynamic image / 255: ``models.fdp.dynamic_image_target``), as the
  published train.py (``dy_weight`` 100, ``mer_weight`` 1).
- MOL: NLL + 10 * sum over the T-1 steps of the flow MSE / (T-1) + 0.1 * landmark L1 over the
  inter-pupil distance. A head switched off (an ablation) drops its term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean of -(1 - p_t)^gamma log p_t (Lin et al., ICCV 2017); gamma 0 is cross-entropy."""
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def fdp_loss(output: dict[str, torch.Tensor], label: torch.Tensor,
             dynamic_image: torch.Tensor, reconstruction_weight: float) -> torch.Tensor:
    """``output["reconstruction"]`` and ``dynamic_image`` (B, 1, S, S) in 0..1; the MSE is the
    mean over every pixel of the batch (PyTorch's MSELoss, as published)."""
    loss = F.nll_loss(F.log_softmax(output["logits"], dim=1), label)
    if "reconstruction" in output:
        loss = loss + reconstruction_weight * F.mse_loss(output["reconstruction"], dynamic_image)
    return loss


def mol_loss(output: dict[str, torch.Tensor], label: torch.Tensor, flow: torch.Tensor | None,
             landmarks: torch.Tensor, pupil_distance: torch.Tensor, flow_weight: float,
             landmark_weight: float) -> torch.Tensor:
    """``flow`` (B, T-1, 2, S, S), ``landmarks`` (B, T, 68, 2), ``pupil_distance`` (B, T), all
    in pixels of the network's input; a distance under one pixel counts as one."""
    loss = F.nll_loss(F.log_softmax(output["logits"], dim=1), label)
    if "flow" in output:
        steps = flow.shape[1]
        per_step = ((output["flow"] - flow) ** 2).flatten(2).mean(dim=2).mean(dim=0)
        loss = loss + flow_weight * per_step.sum() / steps
    if "landmarks" in output:
        error = (output["landmarks"] - landmarks).abs().mean(dim=(2, 3))  # (B, T)
        loss = loss + landmark_weight * (error / pupil_distance.clamp_min(1.0)).mean()
    return loss
