"""The micro-batches of one update on one rank: runs of consecutive whole pairs (at most micro_batch_size pairs,
and packed, at most micro_batch_tokens tokens), packed into one padding-free row or right-padded (the reference
layout), and as many on every rank.

Pure functions of the pairs: every rank computes every rank's plan from the same global batch, so the ranks agree
on the number of forward/backward passes (FSDP's all-gathers and reduce-scatters are collectives) without
communicating, and a resumed run rebuilds the same micro-batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simpo_live.data.batches import PairBatch, collate_packed, collate_pairs
from simpo_live.data.tokenize import TokenizedPair


@dataclass(frozen=True)
class MicroBatching:
    packed: bool
    micro_batch_size: int
    """Most pairs per micro-batch (both layouts)."""
    micro_batch_tokens: int
    """Packed layout: most tokens per micro-batch."""


def pair_tokens(pair: TokenizedPair) -> int:
    """Tokens of a pair's two sequences (the prompt is in both)."""
    return 2 * len(pair.prompt_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)


def plan_groups(pairs: list[TokenizedPair], batching: MicroBatching) -> list[list[int]]:
    """Which of `pairs` go into each micro-batch: consecutive runs of at most micro_batch_size pairs and, packed,
    at most micro_batch_tokens tokens (a pair alone over the budget still gets a micro-batch). Under the auto
    budget the token cap never binds, so packed micro-batches hold the same pairs as padded ones: the same sums
    in the same order, and one process accumulates the same micro-batches as the ranks of a DDP run."""
    budget = batching.micro_batch_tokens if batching.packed else None
    groups: list[list[int]] = []
    tokens = 0
    for i, pair in enumerate(pairs):
        n = pair_tokens(pair)
        if groups and len(groups[-1]) < batching.micro_batch_size and (budget is None or tokens + n <= budget):
            groups[-1].append(i)
            tokens += n
        else:
            groups.append([i])
            tokens = n
    return groups


def rank_micro_batches(shares: list[list[TokenizedPair]], rank: int, batching: MicroBatching,
                       pad_id: int) -> list[PairBatch]:
    """Rank `rank`'s micro-batches of one update, `shares` being every rank's pairs of it.

    Every rank gets as many micro-batches as the rank that needs most; the others end with fillers (their
    smallest pair, loss weight 0).
    """
    mine = shares[rank]
    collate = collate_packed if batching.packed else (lambda chunk: collate_pairs(chunk, pad_id))
    batches = [collate([mine[i] for i in group]) for group in plan_groups(mine, batching)]
    count = max(len(plan_groups(share, batching)) for share in shares)
    if len(batches) < count:
        filler = replace(collate([min(mine, key=pair_tokens)]), is_filler=True)
        batches += [filler] * (count - len(batches))
    return batches
