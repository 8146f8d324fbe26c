"""What the run's eval needs, fixed before step 1: its prompts, its rollout (sampling, engine, scoring), its
schedule and where its files go. Built at the trainer's edge (evals/register.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simpo_live.rollout.spec import RolloutSpec


@dataclass(frozen=True)
class EvalPlan:
    prompts: list[str]
    rollout: RolloutSpec
    output_dir: Path
    schedule: list[int]  # every eval step of the run; the first is the baseline win rates compare against
    config_digest: str
    reference_lengths: dict[str, list[int]]
