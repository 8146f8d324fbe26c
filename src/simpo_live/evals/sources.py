"""Which prompts an eval uses: inline, a file, synthetic from a template, or held-out preference prompts."""

from __future__ import annotations

from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.data import PreferenceData
from simpo_live.evals.prompts import load_prompts, synthetic_prompts


def resolve_prompts(cfg: InferenceEvalConfig, data: PreferenceData) -> list[str]:
    """The eval's global prompt list, identical on every rank (so contiguous slices line up)."""
    if cfg.prompts is not None:
        return list(cfg.prompts)
    if cfg.prompts_path is not None:
        return load_prompts(cfg.prompts_path)
    if cfg.synthetic_prompt_count is not None:
        return synthetic_prompts(cfg.synthetic_prompt_count, cfg.synthetic_prompt_template)
    heldout = [pair.prompt_text for pair in data.validation]
    return heldout[: cfg.heldout_prompt_count] if cfg.heldout_prompt_count else heldout
