"""Continuous batching: who runs this round. Waiting and running queues, admission, chunked prefill.

Each round every running sequence that has a pending token decodes one token, and up to `max_tokens_per_round`
prompt tokens are prefilled on top. Admission is first-in first-out and reserves a sequence's *whole* KV
(prompt + max_new_tokens) up front, so nothing is ever preempted: recompute preemption would re-prefill a
prompt plus the tokens generated so far in one pass, and prefill(n) differs in the last bits from prefill(n-1) +
decode (measured; docs/decisions.md), which would make an output depend on memory pressure.
For the same reason a prompt is prefilled in chunks whose boundaries depend only on the request (multiples of
`max_tokens_per_round`); a chunk that does not fit this round's budget waits whole for the next round.
The scheduler never touches tensors: it returns a `Batch` and, after the runner sampled, records the tokens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from simpo_live.engine.block_manager import Placement
from simpo_live.engine.sequence import Sequence, SequenceStatus


@dataclass(frozen=True)
class PrefillChunk:
    """Prompt tokens [start, end) of `seq` to run this round."""

    seq: Sequence
    start: int
    end: int

    @property
    def is_last(self) -> bool:
        return self.end == self.seq.num_prompt_tokens


@dataclass
class Batch:
    """One round: decode rows first, then prefill chunks (the runner packs tokens in this order)."""

    decode: list[Sequence] = field(default_factory=list)
    prefill: list[PrefillChunk] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return len(self.decode) + sum(c.end - c.start for c in self.prefill)

    @property
    def sampled(self) -> list[Sequence]:
        """Sequences that get a new token this round, in the order the runner returns tokens."""
        return self.decode + [c.seq for c in self.prefill if c.is_last]

    def __bool__(self) -> bool:
        return bool(self.decode or self.prefill)


class Scheduler:
    def __init__(self, block_manager: Placement, max_seqs: int, max_tokens_per_round: int):
        self.block_manager = block_manager
        self.max_seqs = max_seqs
        self.chunk_size = max_tokens_per_round
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        """Queue a sequence; the engine has already checked that it fits an empty cache."""
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def _next_chunk(self, seq: Sequence) -> PrefillChunk:
        start = seq.num_cached_tokens
        return PrefillChunk(seq, start, min(start + self.chunk_size, seq.num_prompt_tokens))

    def schedule(self) -> Batch:
        batch = Batch()
        budget = self.chunk_size
        for seq in self.running:
            if seq.is_prefilling:
                chunk = self._next_chunk(seq)
                if chunk.end - chunk.start > budget:
                    budget = 0  # later prompts wait too, so they never overtake this one
                    continue
                batch.prefill.append(chunk)
                budget -= chunk.end - chunk.start
            elif seq.num_cached_tokens == seq.num_tokens - 1:
                batch.decode.append(seq)
        while self.waiting and len(self.running) < self.max_seqs:
            seq = self.waiting[0]
            chunk = self._next_chunk(seq)
            if chunk.end - chunk.start > budget or not self.block_manager.can_allocate(seq.max_total_tokens):
                break  # first-in first-out: later requests never overtake the head
            self.waiting.popleft()
            seq.kv_start, seq.num_pages = self.block_manager.allocate(seq.max_total_tokens)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            batch.prefill.append(chunk)
            budget -= chunk.end - chunk.start
        return batch

    def postprocess(self, batch: Batch, token_ids: list[int], logprobs: list[float] | None) -> list[Sequence]:
        """Record what the runner computed and sampled; returns the sequences that finished."""
        for seq in batch.decode:
            seq.num_cached_tokens += 1
        for chunk in batch.prefill:
            chunk.seq.num_cached_tokens = chunk.end
        finished = []
        for i, seq in enumerate(batch.sampled):
            seq.append_token(token_ids[i], None if logprobs is None else logprobs[i])
            if seq.finish_reason is not None:
                self._finish(seq)
                finished.append(seq)
        return finished

    def _finish(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.FINISHED
        self.running.remove(seq)
        self.block_manager.free(seq.kv_start, seq.num_pages)
        seq.kv_start, seq.num_pages = None, 0
