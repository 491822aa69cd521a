"""Each model's training loss: pure functions of the model's output dict and the targets.

- MEGANet: focal loss (Lin et al., ICCV 2017).
- FDP: NLL of the classes + 100 * MSE of the reconstructed dynamic image against its target
  (the published uint8 dynamic image / 255: ``models.fdp.dynamic_image_target``), as the
  published train.py (``dy_weight`` 100, ``mer_weight`` 1).
- MOL, as published (CYF-cuber/MOL train.py): NLL + 0.5 * the sum over the batch's clips of
  each clip's flow MSE + 0.5 * the sum over clips and predicted frames of each frame's
  landmark L1 over its inter-pupil distance. Sums, not means, over the batch, so the two terms
  grow with the batch size. A head switched off (an ablation) drops its term.
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
    in pixels of the network's input; a distance under one pixel counts as one.

    The network predicts landmarks of frames 1..T-1 (the second frame of each pair), so the
    targets of frame 0 are not used. Per clip the flow error is the mean squared error over
    (T-1, 2, S, S); per frame the landmark error is the mean absolute error over the 136
    coordinates divided by the pupil distance; both are summed over the batch (and the
    landmark one over frames), as published."""
    loss = F.nll_loss(F.log_softmax(output["logits"], dim=1), label)
    if "flow" in output:
        per_clip = ((output["flow"] - flow) ** 2).flatten(1).mean(dim=1)
        loss = loss + flow_weight * per_clip.sum()
    if "landmarks" in output:
        predicted = output["landmarks"]
        target = landmarks[:, -predicted.shape[1]:]
        error = (predicted - target).abs().mean(dim=(2, 3))                 # (B, T-1)
        distance = pupil_distance[:, -predicted.shape[1]:].clamp_min(1.0)
        loss = loss + landmark_weight * (error / distance).sum()
    return loss
