"""Which prompts an eval uses: inline, a file, synthetic from a template, or held-out preference prompts."""

from __future__ import annotations

from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.data import PreferenceData
from simpo_live.rollout.prompts import load_prompts_with_sources, synthetic_prompts


def resolve_prompts_with_sources(cfg: InferenceEvalConfig, data: PreferenceData) -> list[tuple[str, str]]:
    """The eval's global prompt list, identical on every rank (so contiguous slices line up), each with where it
    comes from: a file line, a config key index, or a preference data row."""
    if cfg.prompts is not None:
        return [(p, f"inference_eval.prompts[{i}]") for i, p in enumerate(cfg.prompts)]
    if cfg.prompts_path is not None:
        return load_prompts_with_sources(cfg.prompts_path)
    if cfg.synthetic_prompt_count is not None:
        prompts = synthetic_prompts(cfg.synthetic_prompt_count, cfg.synthetic_prompt_template)
        return [(p, f"synthetic prompt {i}") for i, p in enumerate(prompts)]
    heldout = [(pair.prompt_text, pair.source) for pair in data.validation]
    return heldout[: cfg.heldout_prompt_count] if cfg.heldout_prompt_count else heldout
