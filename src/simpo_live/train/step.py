"""One optimizer update (gradient accumulation over micro-batches, clipping) and the validation pass."""

from __future__ import annotations

import contextlib
import math
import re
import time
import warnings
from dataclasses import dataclass

import torch

from simpo_live.data import PairBatch, TokenizedPair, collate_pairs
from simpo_live.distributed.parallel import gradient_sync, whole_value
from simpo_live.train.logps import response_avg_logps
from simpo_live.train.loss import LossOptions, SimpoLossOutput, simpo_loss
from simpo_live.train.metrics import PairStats, StepMetrics
from simpo_live.train.throughput import ModelFlops


@dataclass(frozen=True)
class StepSettings:
    beta: float
    gamma_beta_ratio: float
    max_grad_norm: float | None
    autocast_dtype: torch.dtype | None  # None: run in the weights' dtype
    device: torch.device
    logprob_chunk_tokens: int = 0  # response positions per lm_head chunk; 0: all at once
    loss_options: LossOptions = LossOptions()
    model_flops: ModelFlops | None = None  # None: no FLOP count, so no MFU
    peak_flops: float | None = None  # one device's peak FLOP/s in the compute dtype; None: MFU absent


def forward_pairs(model: torch.nn.Module, batch: PairBatch, settings: StepSettings
                  ) -> tuple[SimpoLossOutput, torch.Tensor, torch.Tensor]:
    """Chosen and rejected rows in one forward pass; returns the loss output and both (B,) avg logps."""
    autocast = (torch.autocast(settings.device.type, dtype=settings.autocast_dtype)
                if settings.autocast_dtype is not None else contextlib.nullcontext())
    with autocast:
        avg_logps = response_avg_logps(model, batch, settings.logprob_chunk_tokens)  # (2B,)
    chosen, rejected = avg_logps[: batch.num_pairs], avg_logps[batch.num_pairs:]
    out = simpo_loss(chosen, rejected, settings.beta, settings.gamma_beta_ratio, settings.loss_options)
    return out, chosen, rejected


def batch_flops(batch: PairBatch, settings: StepSettings) -> float:
    if settings.model_flops is None:
        return 0.0
    return settings.model_flops.of_sequences(batch.sequence_lengths(), int(batch.predicts_response().sum()))


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, micro_batches: list[PairBatch],
               settings: StepSettings) -> StepMetrics:
    """Accumulate gradients over this rank's micro-batches, clip, update; metrics are global means."""
    start = time.perf_counter()
    model.train()
    rank_pairs = sum(b.num_pairs for b in micro_batches if not b.is_filler)
    stats = PairStats()
    for i, batch in enumerate(micro_batches):
        with gradient_sync(model, enabled=i == len(micro_batches) - 1):
            out, chosen, rejected = forward_pairs(model, batch.to(settings.device), settings)
            # Per-rank mean over pairs; DDP's gradient averaging over equal rank batches makes it global. A
            # filler runs forward and backward (the collectives every rank must join) with weight 0.
            total = out.losses.sum()
            (total * 0.0 if batch.is_filler else total / rank_pairs).backward()
        stats.add_compute(batch.num_computed_tokens, 0.0 if batch.is_filler else batch_flops(batch, settings))
        if not batch.is_filler:
            stats.add(out, chosen, rejected, batch.num_tokens)
    max_norm = settings.max_grad_norm if settings.max_grad_norm is not None else float("inf")
    grad_norm = whole_value(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    lr = optimizer.param_groups[0]["lr"]
    stats = stats.all_reduce()
    # The loss sum and the gradient norm are global, so every rank takes the same decision: a non-finite update
    # is never applied (the caller stops the run or counts it as skipped).
    is_finite = math.isfinite(stats.loss) and math.isfinite(grad_norm)
    if is_finite:
        optimizer.step()
        scheduler.step()
    else:
        with warnings.catch_warnings():  # the schedule still advances: a skipped update is still a step
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    peak_memory_gib = (torch.cuda.max_memory_allocated(settings.device) / 2**30
                       if settings.device.type == "cuda" else None)
    mfu = (stats.flops / (elapsed * settings.peak_flops * stats.num_ranks)
           if settings.peak_flops and settings.model_flops else None)
    return StepMetrics(pairs=stats.pair_means(), grad_norm=grad_norm, lr=lr, num_tokens=stats.num_tokens,
                       tokens_per_sec=stats.num_tokens / elapsed, step_time_sec=elapsed,
                       padding_share=1.0 - stats.num_tokens / max(stats.num_computed_tokens, 1.0), mfu=mfu,
                       update_skipped=not is_finite, peak_memory_gib=peak_memory_gib)


@torch.no_grad()
def validate(model: torch.nn.Module, pairs: list[TokenizedPair], micro_batch_size: int, pad_id: int,
             settings: StepSettings, num_batches: int, filler: TokenizedPair) -> dict[str, float]:
    """SimPO metrics over `pairs` (this rank's share of the validation split), summed over ranks.

    Every rank runs exactly `num_batches` forward passes, because FSDP's all-gathers are collectives;
    a rank whose share ran out computes on `filler` and discards the result.
    """
    model.eval()
    stats = PairStats()
    for i in range(num_batches):
        chunk = pairs[i * micro_batch_size: (i + 1) * micro_batch_size]
        batch = collate_pairs(chunk or [filler], pad_id).to(settings.device)
        out, chosen, rejected = forward_pairs(model, batch, settings)
        if chunk:
            stats.add(out, chosen, rejected, batch.num_tokens)
    return stats.all_reduce().means("val")
