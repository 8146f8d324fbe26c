"""A generated sample as a typed row, and its JSON form in host files.

The JSON form is the on-disk contract (host files, the `simpo-live sample` output, the report's input): its keys
and their order are fixed here, once, and `to_json(from_json(d)) == d` for every row this package writes.
Key order: the sample, the sampling settings, the writer's provenance, then the scorer's `score` and the reward
model's fields when they were scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from simpo_live.rollout.host_files import read_host_file

SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "n", "ignore_eos", "stop_token_ids",
                 "use_chat_template", "run_seed")
REWARD_KEYS = ("reward", "reward_truncated", "reward_model", "reward_model_config_digest")


@dataclass(frozen=True)
class Reward:
    """The reward model's score of one row and where it came from."""

    value: float
    truncated: bool  # the sample was cut by max_new_tokens and scored as it is
    model: str
    model_config_digest: str

    def to_json(self) -> dict[str, Any]:
        return dict(zip(REWARD_KEYS, (self.value, self.truncated, self.model, self.model_config_digest)))


@dataclass(frozen=True)
class GenerationRow:
    step: int
    global_prompt_index: int
    sample_index: int
    prompt: str
    generated_text: str
    generated_token_count: int
    prompt_token_count: int
    finish_reason: str
    seed: int
    process_index: int
    process_count: int
    sampling: dict[str, Any] = field(default_factory=dict)  # SAMPLING_KEYS -> values
    provenance: dict[str, Any] = field(default_factory=dict)  # e.g. config_digest, or the sample command's model_path
    score: float | None = None  # the user scorer's
    reward: Reward | None = None

    @property
    def key(self) -> tuple[int, int]:
        return self.global_prompt_index, self.sample_index

    @property
    def comparison_score(self) -> float | None:
        """What win rates compare and on-policy rounds pair by: the reward model's, else the scorer's, else none."""
        return self.reward.value if self.reward is not None else self.score

    def with_provenance(self, provenance: dict[str, Any]) -> GenerationRow:
        return replace(self, provenance=provenance)

    def to_json(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in SAMPLE_KEYS}
        row.update(self.sampling)
        row.update(self.provenance)
        if self.score is not None:
            row["score"] = self.score
        if self.reward is not None:
            row.update(self.reward.to_json())
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> GenerationRow:
        sample = {name: row[name] for name in SAMPLE_KEYS}
        known = set(sample) | set(SAMPLING_KEYS) | set(REWARD_KEYS) | {"score"}
        reward = Reward(*(row[k] for k in REWARD_KEYS)) if "reward" in row else None
        return cls(**sample, sampling={k: row[k] for k in SAMPLING_KEYS if k in row},
                   provenance={k: v for k, v in row.items() if k not in known}, score=row.get("score"), reward=reward)


def read_generation_rows(path: str | Path) -> list[GenerationRow]:
    """The rows of one host file of generated samples, in file order."""
    return [GenerationRow.from_json(row) for row in read_host_file(path)]


# The sample's own fields, first in every row: every field but the sampling, provenance and scores.
SAMPLE_KEYS = tuple(f.name for f in fields(GenerationRow) if f.name not in ("sampling", "provenance", "score", "reward"))
