"""Step metrics: SimPO statistics summed over micro-batches and ranks, then turned into logged means."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.distributed as dist

from simpo_live.train.loss import SimpoLossOutput


@dataclass
class PairStats:
    """Sums over pairs (so micro-batches and ranks add up exactly) plus counts."""

    loss: float = 0.0
    chosen_logp: float = 0.0
    rejected_logp: float = 0.0
    margin: float = 0.0
    reward_correct: float = 0.0
    margin_correct: float = 0.0
    num_pairs: float = 0.0
    num_tokens: float = 0.0

    def add(self, out: SimpoLossOutput, chosen: torch.Tensor, rejected: torch.Tensor, num_tokens: int) -> None:
        self.loss += out.losses.detach().sum().item()
        self.chosen_logp += chosen.detach().sum().item()
        self.rejected_logp += rejected.detach().sum().item()
        self.margin += out.margins.detach().sum().item()
        self.reward_correct += out.reward_correct.sum().item()
        self.margin_correct += out.margin_correct.sum().item()
        self.num_pairs += out.losses.numel()
        self.num_tokens += num_tokens

    def all_reduce(self) -> PairStats:
        """Sum over ranks (a no-op in one process)."""
        if not (dist.is_available() and dist.is_initialized()):
            return self
        values = torch.tensor([getattr(self, f.name) for f in fields(self)], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            values = values.cuda()
        dist.all_reduce(values)
        return PairStats(*values.cpu().tolist())

    def means(self, prefix: str) -> dict[str, float]:
        n = max(self.num_pairs, 1.0)
        return {
            f"{prefix}/loss": self.loss / n,
            f"{prefix}/chosen_logp": self.chosen_logp / n,
            f"{prefix}/rejected_logp": self.rejected_logp / n,
            f"{prefix}/margin": self.margin / n,
            f"{prefix}/reward_accuracy": self.reward_correct / n,
            f"{prefix}/margin_accuracy": self.margin_correct / n,
        }
