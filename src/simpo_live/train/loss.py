"""The SimPO loss (Meng, Xia & Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward").

Per pair: loss = softplus(-beta * ((avg_logp_chosen - avg_logp_rejected) - gamma_beta_ratio)), i.e.
-log sigmoid(beta * avg_logp_chosen - beta * avg_logp_rejected - gamma) with gamma = gamma_beta_ratio * beta.
Worked example: beta=2, gamma_beta_ratio=0.5, chosen -1.0, rejected -2.0 -> margin 1.0,
loss = softplus(-2 * 0.5) = log(1 + e^-1) = 0.31326.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SimpoLossOutput:
    losses: torch.Tensor  # (B,) per pair
    margins: torch.Tensor  # (B,) avg_logp_chosen - avg_logp_rejected
    reward_correct: torch.Tensor  # (B,) bool: chosen > rejected (the SimPO paper's accuracy)
    margin_correct: torch.Tensor  # (B,) bool: margin > gamma_beta_ratio (Levanter's accuracy)


def simpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor,
               beta: float, gamma_beta_ratio: float) -> SimpoLossOutput:
    """Per-pair SimPO losses from length-normalised log-likelihoods of the responses, both (B,)."""
    margins = chosen_avg_logps - rejected_avg_logps
    return SimpoLossOutput(
        losses=F.softplus(-beta * (margins - gamma_beta_ratio)),
        margins=margins,
        reward_correct=chosen_avg_logps > rejected_avg_logps,
        margin_correct=margins > gamma_beta_ratio,
    )
