"""The pairs of each global batch: a pure function of the step, so a resumed run draws the same batches.

`SeededPairs` walks a list of pairs (the training data, or an on-policy round's) in seeded epoch permutations
(`global_batch_indices`); the on-policy source (`simpo_live.onpolicy.source`) has the same one-method shape.
Splitting a batch over ranks and micro-batches is the loop's business.
"""

from __future__ import annotations

from typing import Protocol

from simpo_live.data.batches import global_batch_indices
from simpo_live.data.tokenize import TokenizedPair


class PairStream(Protocol):
    def batch(self, step: int) -> list[TokenizedPair]:
        """The global batch of update `step` (0-based)."""
        ...


class SeededPairs:
    """`pairs`, `batch_size` per update, in the seeded order of `seed`."""

    def __init__(self, pairs: list[TokenizedPair], batch_size: int, seed: int):
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed

    def batch(self, step: int) -> list[TokenizedPair]:
        return self.draw(step, self.batch_size)

    def draw(self, step: int, count: int) -> list[TokenizedPair]:
        """`count` pairs for update `step`: items [step*count, (step+1)*count) of the seeded stream."""
        if count == 0:
            return []
        return [self.pairs[i] for i in global_batch_indices(len(self.pairs), count, step, self.seed)]
