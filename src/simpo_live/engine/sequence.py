"""Per-sample state while it is generated: tokens so far, how many are in the KV cache, its pages, why it stopped.

A request with `n` samples becomes `n` sequences. No tensors here: the scheduler reads and updates these
objects, the runner only reads them.
"""

from __future__ import annotations

import enum
import itertools

from simpo_live.engine.params import FinishReason, SamplingParams

_ids = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Sequence:
    """One sample: prompt + generated tokens. `num_cached_tokens` tokens have their keys/values in the cache."""

    def __init__(self, request_id, sample_index: int, prompt_token_ids: list[int], params: SamplingParams,
                 seed: int, stop_token_ids: frozenset[int]):
        self.seq_id = next(_ids)
        self.request_id = request_id
        self.sample_index = sample_index
        self.prompt_token_ids = list(prompt_token_ids)
        self.token_ids = list(prompt_token_ids)
        self.params = params
        self.seed = seed
        self.stop_token_ids = stop_token_ids
        self.status = SequenceStatus.WAITING
        self.num_cached_tokens = 0
        self.kv_start: int | None = None  # token offset of its contiguous extent in the KV pool
        self.num_pages = 0
        self.finish_reason: FinishReason | None = None
        self.logprobs: list[float] | None = [] if params.logprobs else None

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - len(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_token_ids):]

    @property
    def max_total_tokens(self) -> int:
        """Tokens the sequence may reach: its KV reservation."""
        return self.num_prompt_tokens + self.params.max_new_tokens

    @property
    def is_prefilling(self) -> bool:
        return self.num_cached_tokens < self.num_prompt_tokens

    def append_token(self, token_id: int, logprob: float | None) -> None:
        """Record a sampled token and decide whether the sequence is done (stop token or length)."""
        self.token_ids.append(token_id)
        if self.logprobs is not None:
            self.logprobs.append(float(logprob))
        if token_id in self.stop_token_ids:
            self.finish_reason = "stop"
        elif self.num_output_tokens >= self.params.max_new_tokens:
            self.finish_reason = "length"

    def __repr__(self) -> str:
        return (f"Sequence(request={self.request_id!r}, sample={self.sample_index}, tokens={self.num_tokens}, "
                f"cached={self.num_cached_tokens}, status={self.status.value})")
