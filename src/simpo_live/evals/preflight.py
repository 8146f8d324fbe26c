"""Before step 1: show that a full eval fits beside the training state, or fail now naming the knobs.

The seed's lesson: size the KV cache when the training state is already in memory, and find out at step 0,
not at step 50. AdamW's two moments are not allocated until the first update, so they are counted here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simpo_live.config.load import ConfigError
from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.engine.kv_cache import free_memory_bytes, pages_that_fit
from simpo_live.evals.generation import longest_prompt
from simpo_live.intmath import ceil_div
from simpo_live.model import LlamaModel
from simpo_live.model.lora import has_adapters


@dataclass(frozen=True)
class EvalFit:
    longest_request_tokens: int
    pages_needed_by_longest: int
    cache_pages: int
    page_size: int


def parameter_bytes(model: LlamaModel) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def moment_bytes(model: LlamaModel, world_size: int, sharded: bool) -> int:
    """AdamW's two moments of the trained weights (all of them, or the LoRA adapters) on one rank."""
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return 2 * trained // (world_size if sharded else 1)


def check_eval_fits(cfg: InferenceEvalConfig, model: LlamaModel, tokenizer, prompts: list[str],
                    device: torch.device, world_size: int, sharded: bool, kv_dtype: torch.dtype,
                    sources: list[str] | None = None, scoring_bytes: int = 0) -> EvalFit:
    """Raise ConfigError unless every request of the eval fits the model's context and the KV cache beside the
    training state (pages in `kv_dtype`, the engine's, sized by the engine's own rule), and the reward model (`scoring_bytes`, loaded once the engine is gone) fits beside the training
    state too. A request that does not fit is named by its prompt's index and `sources` entry (file line, config
    key or data row)."""
    index, longest_prompt_tokens = longest_prompt(tokenizer, prompts, cfg.use_chat_template)
    longest = max(longest_prompt_tokens, 1) + cfg.max_new_tokens
    which = f"prompt {index}" + (f" ({sources[index]})" if sources else "")
    context = model.args.max_position_embeddings
    if longest > context:
        raise ConfigError([f"inference_eval: {which} has {longest_prompt_tokens} tokens; + max_new_tokens "
                           f"({cfg.max_new_tokens}) = {longest} tokens exceeds the model's context of {context} "
                           "(max_position_embeddings): lower inference_eval.max_new_tokens or shorten the prompt"])
    pages_needed = ceil_div(longest, cfg.page_size)
    if cfg.max_pages is not None:
        cache_pages = cfg.max_pages
        knob = "raise inference_eval.max_pages"
    else:
        reserved = moment_bytes(model, world_size, sharded)  # allocated at the first update
        if sharded or has_adapters(model):
            reserved += parameter_bytes(model)  # the full replica gathered (or merged) for the eval (upper bound)
        available = max(0, free_memory_bytes(device) - reserved)
        cache_pages = pages_that_fit(available, cfg.hbm_utilization, cfg.page_size, model.args, kv_dtype)
        knob = "raise inference_eval.hbm_utilization (or set max_pages)"
    check_reward_model_fits(scoring_bytes, model, device, world_size, sharded)
    if pages_needed > cache_pages:
        raise ConfigError([f"inference_eval: {which} needs {longest} tokens = {pages_needed} pages of "
                           f"{cfg.page_size} tokens but the KV cache would hold {cache_pages}: {knob}, "
                           "or lower inference_eval.max_new_tokens"])
    return EvalFit(longest, pages_needed, cache_pages, cfg.page_size)


def check_reward_model_fits(scoring_bytes: int, model: LlamaModel, device: torch.device, world_size: int,
                            sharded: bool) -> None:
    if scoring_bytes == 0:
        return
    available = free_memory_bytes(device) - moment_bytes(model, world_size, sharded)  # not yet allocated
    if scoring_bytes > available:
        raise ConfigError([f"inference_eval.reward_model: scoring needs {scoring_bytes / 2**30:.2f} GiB (weights and "
                           f"one batch) but {max(available, 0) / 2**30:.2f} GiB is free beside the training state: "
                           "lower inference_eval.reward_batch_tokens or set inference_eval.reward_model_dtype: "
                           "bfloat16"])
