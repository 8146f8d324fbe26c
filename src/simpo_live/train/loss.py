"""The SimPO loss (Meng, Xia & Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward"),
with the options of the authors' trainer (princeton-nlp/SimPO, scripts/simpo_trainer.py).

Per pair, with z = beta * ((avg_logp_chosen - avg_logp_rejected) - gamma_beta_ratio):
  sigmoid (the paper): (1 - label_smoothing) * softplus(-z) + label_smoothing * softplus(z)
  hinge:               relu(1 - z)
plus sft_weight * (-avg_logp_chosen), the chosen response's mean token NLL.
Worked example: beta=2, gamma_beta_ratio=0.5, chosen -1.0, rejected -2.0 -> margin 1.0, z = 1,
loss = softplus(-1) = log(1 + e^-1) = 0.31326; with label_smoothing 0.1: 0.9 * 0.31326 + 0.1 * 1.31326 = 0.41326;
hinge: relu(1 - 1) = 0; with sft_weight 0.5: 0.31326 + 0.5 * 1.0 = 0.81326.
The SimPO repo averages its NLL term over all chosen tokens of a micro-batch; here it is per pair, so the loss
stays a mean over pairs whatever the micro-batching or packing (the two agree for one pair per micro-batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossOptions:
    """The SimPO repo's options beyond beta and gamma; the defaults are the paper's loss."""

    loss_type: str = "sigmoid"  # "sigmoid" | "hinge"
    label_smoothing: float = 0.0  # sigmoid only (the config refuses it with hinge)
    sft_weight: float = 0.0


@dataclass
class SimpoLossOutput:
    losses: torch.Tensor  # (B,) per pair
    margins: torch.Tensor  # (B,) avg_logp_chosen - avg_logp_rejected
    reward_correct: torch.Tensor  # (B,) bool: chosen > rejected (the SimPO paper's accuracy)
    margin_correct: torch.Tensor  # (B,) bool: margin > gamma_beta_ratio (Levanter's accuracy)


def simpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor,
               beta: float, gamma_beta_ratio: float, options: LossOptions | None = None) -> SimpoLossOutput:
    """Per-pair SimPO losses from length-normalised log-likelihoods of the responses, both (B,).
    `options`: the SimPO repo's loss_type, label_smoothing and sft_weight; None is the paper's loss.
    """
    options = options or LossOptions()
    margins = chosen_avg_logps - rejected_avg_logps
    z = beta * (margins - gamma_beta_ratio)
    if options.loss_type == "hinge":
        losses = torch.relu(1 - z)
    elif options.loss_type == "sigmoid":
        losses = F.softplus(-z)
        if options.label_smoothing:
            losses = (1 - options.label_smoothing) * losses + options.label_smoothing * F.softplus(z)
    else:
        raise ValueError(f"unknown SimPO loss_type {options.loss_type!r} (expected 'sigmoid' or 'hinge')")
    if options.sft_weight:
        losses = losses - options.sft_weight * chosen_avg_logps
    return SimpoLossOutput(
        losses=losses,
        margins=margins,
        reward_correct=chosen_avg_logps > rejected_avg_logps,
        margin_correct=margins > gamma_beta_ratio,
    )
