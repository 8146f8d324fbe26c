"""What a rollout is, fixed before step 1: its sampling, its engine and replica, how its samples are scored, and
the gather timeout; built from the config sections every rollout shares (config/rollout.py). The eval and the
on-policy rounds each add what is theirs (prompts, schedule, files) in their own plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from simpo_live.config.rollout import EngineSection, SamplingSection, ScoringSection
from simpo_live.engine import EngineConfig
from simpo_live.rollout.generation import GenerationSettings
from simpo_live.rollout.reward import RewardModelInfo, add_rewards, inspect_reward_model, reward_dtype
from simpo_live.rollout.rows import GenerationRow
from simpo_live.rollout.scorer import Scorer, load_scorer, score_rows


@dataclass(frozen=True)
class Scoring:
    """Where a rollout's scores come from: the user scorer (`score`), then the reward model (`reward`), which is
    loaded for one call only, once the engine and the replica are gone."""

    scorer: Scorer | None
    reward_model: RewardModelInfo | None
    reward_model_dtype: str
    reward_batch_tokens: int

    @property
    def source(self) -> str | None:
        if self.reward_model is not None:
            return "reward_model"
        return "scorer" if self.scorer is not None else None

    def score(self, rows: list[GenerationRow], device: torch.device) -> list[GenerationRow]:
        """The rows scored by the scorer, then by the reward model."""
        rows = score_rows(rows, self.scorer)
        if self.reward_model is None:
            return rows
        return add_rewards(rows, self.reward_model, reward_dtype(self.reward_model_dtype, device), device,
                           self.reward_batch_tokens)


@dataclass(frozen=True)
class RolloutSpec:
    """How every rank generates and scores its slice of a rollout."""

    settings: GenerationSettings
    engine: EngineConfig
    replica_dtype: torch.dtype | None  # None: the training weights as they are
    scoring: Scoring
    timeout_sec: float
    provenance: dict[str, Any]  # fields every generated row carries after its sampling fields
    isolation: str = "in_process"  # or "subprocess": a `simpo-live sample` child generates (rollout/isolation.py)


def load_scoring(section: ScoringSection, prefix: str) -> Scoring:
    """The section's scorer imported and its reward model inspected (a bad one is a config error naming the key)."""
    scorer = load_scorer(section.scorer, f"{prefix}.scorer")
    reward_model = (inspect_reward_model(section.reward_model, f"{prefix}.reward_model")
                    if section.reward_model else None)
    return Scoring(scorer=scorer, reward_model=reward_model,
                   reward_model_dtype=section.reward_model_dtype, reward_batch_tokens=section.reward_batch_tokens)


def engine_config(section: EngineSection, max_seq_len: int) -> EngineConfig:
    """The engine's configuration for a rollout, built here only: slots of `max_seq_len`, the longest request (not
    the model's context), so shorter slots and more of them."""
    return EngineConfig(**section.engine_knobs(), max_seq_len=max_seq_len)


def generation_settings(section: SamplingSection, n: int, seed: int, **options) -> GenerationSettings:
    """The section's sampling, `n` samples per prompt, seeded from `seed`; `options` are the eval's own (stop
    tokens, ignore_eos, the chat template)."""
    return GenerationSettings(max_new_tokens=section.max_new_tokens, temperature=section.temperature,
                              top_p=section.top_p, top_k=section.top_k, n=n, seed=seed, **options)
