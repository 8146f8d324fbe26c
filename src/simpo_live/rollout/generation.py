"""Generate one host's shard of prompts into typed rows (rollout/rows.py; written as host files by rollout/host_files.py).

Shared by the `sample` command and the periodic inference eval. Rows are self-describing: step, host, global
prompt index, seed, sampling parameters and provenance. Which slice a host owns is the caller's business
(`simpo_live.distributed.sharding.shard_bounds`); these functions only take the global offset of the slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from simpo_live.engine import Engine, Request, SamplingParams, StepResult
from simpo_live.rollout.prompts import tokenize_prompt
from simpo_live.rollout.rows import GenerationRow
from simpo_live.seeds import derive_seed


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling for every prompt of a rollout; `seed` is the root each sample's seed derives from."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    ignore_eos: bool = False
    stop_token_ids: tuple[int, ...] = ()
    """Stop tokens added to the engine's EOS and end-of-turn (kept under ignore_eos)."""
    seed: int = 0
    use_chat_template: bool = True


def required_max_seq_len(tokenizer, prompts: list[str], settings: GenerationSettings) -> int:
    """Longest prompt (as tokenised for generation) + max_new_tokens: the engine's max_seq_len for these prompts.
    Sizing the engine to it (not to the model's context) gives shorter KV slots, hence more of them."""
    longest = max((len(tokenize_prompt(tokenizer, p, settings.use_chat_template)) for p in prompts), default=1)
    return longest + settings.max_new_tokens


def generate_shard(engine: Engine, prompts: list[str], global_offset: int, settings: GenerationSettings,
                   step: int, rank: int, world_size: int, provenance: dict[str, Any] | None = None,
                   on_step: Callable[[StepResult], None] | None = None) -> list[GenerationRow]:
    """Rows for `prompts`, which are global prompts [global_offset, global_offset + len(prompts)).

    Each (prompt, sample) is its own request seeded with derive_seed(settings.seed, step, global index, sample
    index): seeds come from the work, not the worker, so a row does not depend on the host count or on which
    prompts share the batch.
    `on_step(StepResult)` is called after every engine round (progress bars)."""
    requests = []
    for i, prompt in enumerate(prompts):
        token_ids = tokenize_prompt(engine.tokenizer, prompt, settings.use_chat_template)
        for j in range(settings.n):
            params = SamplingParams(
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                max_new_tokens=settings.max_new_tokens, ignore_eos=settings.ignore_eos,
                stop_token_ids=settings.stop_token_ids, seed=derive_seed(settings.seed, step, global_offset + i, j))
            requests.append(Request((i, j), token_ids, params))
    completions = engine.generate(requests, on_step=on_step)
    sampling = sampling_fields(settings)
    return [GenerationRow(step=step, global_prompt_index=global_offset + request.request_id[0],
                          sample_index=request.request_id[1], prompt=prompts[request.request_id[0]],
                          generated_text=completion.text, generated_token_count=len(completion.token_ids),
                          prompt_token_count=completion.prompt_token_count, finish_reason=completion.finish_reason,
                          seed=request.params.seed, process_index=rank, process_count=world_size, sampling=sampling,
                          provenance=dict(provenance or {}))
            for request, completion in zip(requests, completions)]


def sampling_fields(settings: GenerationSettings) -> dict[str, Any]:
    """The settings as every row records them (the run seed last, as `run_seed`)."""
    fields = asdict(settings)
    fields["run_seed"] = fields.pop("seed")
    return fields
