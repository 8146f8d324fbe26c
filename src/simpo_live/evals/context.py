"""What one eval call needs from the trainer, and what it needs for the whole run: small typed values built at the
trainer's edge (evals/register.py), so the eval never reads the training session itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.engine import EngineConfig
from simpo_live.evals.generation import GenerationSettings
from simpo_live.evals.reward import RewardModelInfo
from simpo_live.evals.scorer import Scorer
from simpo_live.model import LlamaModel
from simpo_live.tracking import Tracker


@dataclass(frozen=True)
class EvalContext:
    """One call: the step just completed and the live pieces of the trainer it runs beside."""

    step: int
    rank: RankInfo
    device: torch.device
    model: LlamaModel  # the plain module (under FSDP its shards; the eval gathers a replica from it)
    tokenizer: Any
    tracker: Tracker
    progress: Any | None  # the training progress bar (leader only), or None


@dataclass(frozen=True)
class EvalPlan:
    """The run's eval, fixed before step 1: prompts, sampling, engine, scoring and where the files go."""

    prompts: list[str]
    settings: GenerationSettings
    engine: EngineConfig
    engine_dtype: torch.dtype | None  # the replica's dtype; None: the training weights as they are
    output_dir: Path
    schedule: list[int]  # every eval step of the run; the first is the baseline win rates compare against
    config_digest: str
    timeout_sec: float
    reference_lengths: dict[str, list[int]]
    scorer: Scorer | None = None
    reward_model: RewardModelInfo | None = None
