"""The `onpolicy` config section: when rounds run, which prompts, how samples are paired and used; sampling, scoring
and the engine are the sections every rollout shares (config/rollout.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simpo_live.config.rollout import EngineSection, SamplingSection, ScoringSection, SwitchSection
from simpo_live.config.section import MAX_SEED


class OnPolicyConfig(EngineSection, ScoringSection, SamplingSection, SwitchSection):
    """On-policy SimPO: at scheduled steps the model samples answers to training prompts, they are scored, and the
    best-versus-worst pairs become the training pairs until the next round."""

    enabled: bool = False
    """Run on-policy rounds."""
    every: int | None = Field(None, ge=1)
    """A round before the first update and after every N updates. One schedule: every or at_steps (a later layer's
    replaces an inherited one)."""
    at_steps: list[Annotated[int, Field(ge=0)]] | None = None
    """Exact steps after which a round runs (0: before the first update); the other schedule (see every)."""
    prompts_per_round: int = Field(256, ge=1)
    """Prompts per round: the next ones of the training data's prompts in the run's seeded order (or of
    prompts_path)."""
    prompts_path: str | None = None
    """Prompt file (text, one per line, or JSONL with a 'prompt' field) instead of the training data's prompts."""
    samples_per_prompt: int = Field(4, ge=2)
    """Answers sampled per prompt; the highest- and lowest-scored become the pair."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature (greedy samples would all be the same answer)."""
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    """Sampling seed root; defaults to one derived from trainer.seed (distinct from the eval's)."""
    pair_rule: Literal["highest_vs_lowest"] = "highest_vs_lowest"
    """chosen = the highest-scored sample, rejected = the lowest-scored one with a different text; a prompt whose
    samples are all identical, or all tie, is dropped and counted. One score source: scorer or reward_model (a later
    layer's replaces an inherited one)."""
    offline_fraction: float = Field(0.0, ge=0, lt=1)
    """Until the next round, this fraction of every batch comes from the offline data (the rest from the round's
    pairs); 0: only the new pairs."""

    @model_validator(mode="after")
    def _one_score_source(self) -> OnPolicyConfig:
        if self.enabled and (self.scorer is None) == (self.reward_model is None):
            raise ValueError("onpolicy: give exactly one score source, onpolicy.scorer or onpolicy.reward_model")
        if self.enabled and self.every is None and self.at_steps is None:
            raise ValueError("onpolicy: set onpolicy.every or onpolicy.at_steps (when rounds run)")
        return self

    def schedule_steps(self, num_train_steps: int) -> list[int]:
        """The steps after which a round runs; a round at the last step would train nothing."""
        steps = sorted(set(self.at_steps)) if self.at_steps is not None else \
            list(range(0, num_train_steps, self.every or num_train_steps))
        return [s for s in steps if s < num_train_steps]
