"""The micro-batches of one update on one rank: whole pairs packed into token streams up to a budget (or padded
micro-batches of a fixed pair count, the reference layout), and as many on every rank.

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
    """Padded layout: pairs per micro-batch."""
    micro_batch_tokens: int
    """Packed layout: most tokens per micro-batch (a pair alone over it still gets a micro-batch of its own)."""


def pair_tokens(pair: TokenizedPair) -> int:
    """Tokens of a pair's two sequences (the prompt is in both)."""
    return 2 * len(pair.prompt_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)


def pack_groups(token_counts: list[int], budget: int) -> list[list[int]]:
    """Item indices in groups of at most `budget` tokens: first-fit decreasing (ties by index), which fills
    groups well for few items; each group lists its indices in order."""
    groups: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(token_counts)), key=lambda j: (-token_counts[j], j)):
        fit = next((g for g, free in enumerate(room) if token_counts[i] <= free), None)
        if fit is None:
            groups.append([i])
            room.append(budget - token_counts[i])
        else:
            groups[fit].append(i)
            room[fit] -= token_counts[i]
    return [sorted(group) for group in groups]


def plan_groups(pairs: list[TokenizedPair], batching: MicroBatching) -> list[list[int]]:
    """Which of `pairs` go into each micro-batch."""
    if batching.packed:
        return pack_groups([pair_tokens(p) for p in pairs], batching.micro_batch_tokens)
    size = batching.micro_batch_size
    return [list(range(s, min(s + size, len(pairs)))) for s in range(0, len(pairs), size)]


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
