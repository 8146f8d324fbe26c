"""The knobs every rollout shares (the inference eval's and the on-policy rounds'): how samples are drawn, how they
are scored, and the engine and replica that generate them. Each is a section composed into `inference_eval` and
`onpolicy`, so a knob is defined once and its keys stay flat (`inference_eval.temperature`, `onpolicy.temperature`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from simpo_live.config.section import MAX_SEED, ScorerSpec, Section

# The engine's capacity defaults and bounds, defined here once; the engine's own EngineConfig reads them too.
MAX_HBM_UTILIZATION = 0.95  # the rest of the free memory stays for the allocator, activations and fragmentation
DEFAULT_MAX_SEQS = 256
DEFAULT_PAGE_SIZE = 16
DEFAULT_HBM_UTILIZATION = 0.5
DEFAULT_MAX_TOKENS_PER_ROUND = 4096

DEFAULT_SYNTHETIC_TEMPLATE = "Write a short story about item number {index}."
"""What `synthetic_prompt_count` prompts say when no template is given ({index} is the prompt's index)."""


class SwitchSection(Section):
    enabled: bool = False
    """Run this section's rollouts."""


class SamplingSection(Section):
    max_new_tokens: int = Field(64, ge=1)
    """New tokens per sample (the cap; a sample stops earlier only at a stop token)."""
    temperature: float = Field(0.0, ge=0)
    """Sampling temperature; 0 means greedy."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    top_k: int = Field(0, ge=0)
    """Top-k cutoff; 0 disables it."""
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    """Sampling seed root; defaults to trainer.seed."""


class ScoringSection(Section):
    scorer: ScorerSpec = None
    """'module:function' called per sample row (dict with prompt and generated_text) returning a float."""
    reward_model: str | None = None
    """Local Hugging Face sequence-classification reward model (one output) scoring every sample after generation,
    in its own chat template. 'bundled:NAME' names one in simpo_live/assets."""
    reward_model_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Reward model weights: auto is bf16 on CUDA and fp32 on CPU."""
    reward_batch_tokens: int = Field(16384, ge=1)
    """Token budget of one scoring batch (rows x the longest row; rows are sorted by length first)."""


class EngineSection(Section):
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Engine weights and KV cache: auto is a bf16 copy on CUDA and the training weights as they are on CPU."""
    max_seqs: int = Field(DEFAULT_MAX_SEQS, ge=1)
    """Engine: most sequences decoding at once."""
    hbm_utilization: float = Field(DEFAULT_HBM_UTILIZATION, gt=0, le=MAX_HBM_UTILIZATION)
    """Engine: fraction of free device memory (RAM on CPU) for the KV cache."""
    timeout_sec: float | None = Field(None, gt=0)
    """Gather timeout of one eval or round; defaults to trainer.distributed_timeout_sec."""

    def engine_knobs(self) -> dict[str, Any]:
        """The section's engine capacity knobs, by EngineConfig's field names (rollout/spec.py builds the engine's
        configuration from them)."""
        return {"max_seqs": self.max_seqs, "hbm_utilization": self.hbm_utilization}
