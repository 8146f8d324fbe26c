"""Verify the weight handoff: the engine's log-probs for a probe completion equal the training model's.

Recorded in every eval summary, so a stale engine (generating from old weights) shows up as a mismatch and
the values change from one eval step to the next as training moves the weights.
"""

from __future__ import annotations

import torch

from simpo_live.engine import Engine, Request, SamplingParams
from simpo_live.rollout.generation import GenerationSettings
from simpo_live.rollout.prompts import tokenize_prompt
from simpo_live.model import LlamaModel

PROBE_TOKENS = 8


@torch.no_grad()
def teacher_forced_logprobs(model: LlamaModel, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
    """log p(completion token | prefix) for each completion token, from a plain forward pass."""
    ids = torch.tensor([prompt_ids + completion_ids], device=model.lm_head.weight.device)
    logps = torch.log_softmax(model(ids)[0].float(), dim=-1)  # (S, V)
    first = len(prompt_ids) - 1
    return [logps[first + i, token].item() for i, token in enumerate(completion_ids)]


def probe_weight_handoff(engine: Engine, model: LlamaModel, prompt: str, settings: GenerationSettings
                         ) -> dict[str, float]:
    prompt_ids = tokenize_prompt(engine.tokenizer, prompt, settings.use_chat_template)
    # No longer than the eval's own requests: the engine's KV slots are sized to those.
    params = SamplingParams(temperature=0.0, max_new_tokens=min(PROBE_TOKENS, settings.max_new_tokens),
                            ignore_eos=True, logprobs=True)
    completion = engine.generate([Request("probe", prompt_ids, params)])[0]
    trainer = teacher_forced_logprobs(model, prompt_ids, completion.token_ids)
    return {"engine_logprob_sum": float(sum(completion.logprobs)), "trainer_logprob_sum": float(sum(trainer)),
            "num_tokens": len(completion.token_ids)}
