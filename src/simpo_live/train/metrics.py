"""Step metrics: SimPO statistics summed over micro-batches and ranks (`PairStats`), and what one update reports
(`StepMetrics`, read by the tracker and the progress bar)."""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass

import torch

from simpo_live.distributed.reduce import sum_over_ranks
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
    """Non-padding tokens of the counted pairs."""
    num_computed_tokens: float = 0.0
    """Tokens computed, pads and filler micro-batches included."""
    flops: float = 0.0
    """Model FLOPs of the counted pairs (train/throughput.py)."""
    num_ranks: float = 1.0
    """Ranks summed into these statistics."""

    def add(self, out: SimpoLossOutput, chosen: torch.Tensor, rejected: torch.Tensor, num_tokens: int) -> None:
        self.loss += out.losses.detach().sum().item()
        self.chosen_logp += chosen.detach().sum().item()
        self.rejected_logp += rejected.detach().sum().item()
        self.margin += out.margins.detach().sum().item()
        self.reward_correct += out.reward_correct.sum().item()
        self.margin_correct += out.margin_correct.sum().item()
        self.num_pairs += out.losses.numel()
        self.num_tokens += num_tokens

    def add_compute(self, num_computed_tokens: int, flops: float) -> None:
        self.num_computed_tokens += num_computed_tokens
        self.flops += flops

    def all_reduce(self) -> PairStats:
        """Sum over ranks (a no-op in one process)."""
        return PairStats(*sum_over_ranks(astuple(self)))

    def pair_means(self) -> PairMeans:
        n = max(self.num_pairs, 1.0)
        return PairMeans(loss=self.loss / n, chosen_logp=self.chosen_logp / n, rejected_logp=self.rejected_logp / n,
                         margin=self.margin / n, reward_accuracy=self.reward_correct / n,
                         margin_accuracy=self.margin_correct / n)

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/{name}": value for name, value in asdict(self.pair_means()).items()}


@dataclass(frozen=True)
class PairMeans:
    """Means over the pairs of an update or of the validation split."""

    loss: float
    chosen_logp: float
    rejected_logp: float
    margin: float
    reward_accuracy: float
    """chosen > rejected (the SimPO paper's accuracy)."""
    margin_accuracy: float
    """margin > gamma_beta_ratio (Levanter's accuracy)."""


@dataclass(frozen=True)
class StepMetrics:
    """What one optimizer update reports; `as_log()` gives the tracker's "train/..." row."""

    pairs: PairMeans
    grad_norm: float
    lr: float
    num_tokens: float
    """Non-padding tokens of the update, all ranks."""
    tokens_per_sec: float
    """Non-padding tokens per second."""
    step_time_sec: float
    padding_share: float = 0.0
    """Share of the computed tokens that were padding (or filler micro-batches)."""
    mfu: float | None = None
    """Model FLOPs/s over the devices' peak; None when no peak is known (a CPU without trainer.peak_flops)."""
    update_skipped: bool = False
    """The loss or gradient norm was not finite, so the update was not applied."""
    peak_memory_gib: float | None = None
    """CUDA only: the allocator's peak so far."""
    skipped_updates: int | None = None
    """Skipped updates so far in the run (set by the loop once one is skipped)."""

    @property
    def loss(self) -> float:
        return self.pairs.loss

    def as_log(self) -> dict[str, float]:
        row = {f"train/{name}": value for name, value in asdict(self.pairs).items()}
        row.update({"train/grad_norm": self.grad_norm, "train/lr": self.lr, "train/num_tokens": self.num_tokens,
                    "train/tokens_per_sec": self.tokens_per_sec, "train/step_time_sec": self.step_time_sec,
                    "train/padding_share": self.padding_share})
        if self.mfu is not None:
            row["train/mfu"] = self.mfu
        if self.peak_memory_gib is not None:
            row["train/peak_memory_gib"] = self.peak_memory_gib
        if self.update_skipped:
            row["train/update_skipped"] = 1.0
        if self.skipped_updates is not None:
            row["train/skipped_updates"] = float(self.skipped_updates)
        return row
