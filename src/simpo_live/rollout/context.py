"""What one rollout call needs from the trainer (the step, the rank, the live model), the replica's dtype, and the
leader's console line. Built at the trainer's edge by the eval's and the rounds' registration, so a rollout never
reads the training session itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import DTYPES
from simpo_live.tracking import Tracker


@dataclass(frozen=True)
class RolloutContext:
    """One call: the step just completed and the live pieces of the trainer it runs beside."""

    step: int
    rank: RankInfo
    device: torch.device
    model: LlamaModel  # the plain module (under FSDP its shards; the rollout gathers a replica from it)
    tokenizer: Any
    tracker: Tracker
    progress: Any | None  # the training progress bar (leader only), or None


def rollout_context(session) -> RolloutContext:
    return RolloutContext(step=session.step, rank=session.rank, device=session.device, model=session.raw_model,
                          tokenizer=session.tokenizer, tracker=session.tracker, progress=session.progress)


def replica_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The generation replica's dtype: auto is a bf16 copy on CUDA and the training weights as they are elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return DTYPES[name]


def announce(ctx: RolloutContext, line: str) -> None:
    """The leader's one line per eval or round, above the progress bar when there is one."""
    if ctx.progress is not None and ctx.progress.enabled:
        ctx.progress.write(line)
    else:
        print(line, flush=True)
