"""The data source switch: before the first round the offline data; after a round, its pairs until the next one,
alone or mixed with the offline data at a fixed share of every batch.

A batch is a pure function of (step, the round in use, its pairs): the round's pairs are walked in seeded epoch
permutations counted from the round's step, the offline share keeps walking the offline stream by step. A resumed
run that reloads the round's files therefore draws the same batches bitwise.
"""

from __future__ import annotations

from simpo_live.data.stream import SeededPairs
from simpo_live.data.tokenize import TokenizedPair
from simpo_live.seeds import labelled_seed


def round_order_seed(seed: int, round_step: int) -> int:
    """The seed of a round's pair order: distinct per round, unrelated to the offline order."""
    return labelled_seed("onpolicy", seed, round_step)


def offline_share(batch_size: int, offline_fraction: float) -> int:
    """Pairs per batch from the offline data; at least one from the round whenever a round is in use."""
    return min(batch_size - 1, round(batch_size * offline_fraction))


class OnPolicyPairs:
    """Which pairs each update trains on, given the round currently in use (`use_round`)."""

    def __init__(self, offline: SeededPairs, offline_fraction: float):
        self.offline = offline
        self.num_offline = offline_share(offline.batch_size, offline_fraction)
        self.round_step: int | None = None
        self.current: SeededPairs | None = None

    def use_round(self, round_step: int, pairs: list[TokenizedPair]) -> None:
        """Train on `pairs` (made at `round_step`) from now on; a round that made no pairs keeps the previous."""
        if not pairs:
            return
        self.round_step = round_step
        self.current = SeededPairs(pairs, self.offline.batch_size - self.num_offline,
                                    round_order_seed(self.offline.seed, round_step))

    def batch(self, step: int) -> list[TokenizedPair]:
        if self.current is None:
            return self.offline.batch(step)
        return self.offline.draw(step, self.num_offline) + self.current.batch(step - self.round_step)
