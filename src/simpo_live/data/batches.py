"""Which pairs each update uses (a pure function of the step) and how a list of pairs becomes tensors.

`global_batch_indices` walks an endless stream of seeded epoch permutations, so resuming needs only the
step; `rank_slice` gives each rank its contiguous part; `collate_pairs` right-pads chosen then rejected rows;
`collate_packed` lays them end to end in one padding-free row (packing.py decides which pairs go together).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from simpo_live.data.tokenize import TokenizedPair
from simpo_live.seeds import labelled_seed


@dataclass
class PairBatch:
    """The 2B sequences of B pairs (chosen 0..B-1, then rejected B..2B-1), padded or packed.

    Padded: (2B, S), one sequence per row, right-padded. Packed: (1, T), the sequences end to end in that order,
    `packed_lengths` their lengths; positions restart at 0 for each sequence.
    """

    input_ids: torch.Tensor
    """(2B, S) or (1, T) long; pads (padded layout only) are pad_id."""
    positions: torch.Tensor
    """Same shape, long: each token's position in its own sequence (pads keep counting; nothing attends to them)."""
    response_mask: torch.Tensor
    """Same shape, bool: True where the token is a response token (the logit predicting it sits at position-1)."""
    sequence_ids: torch.Tensor
    """Same shape, long: the sequence (0..2B-1) each token belongs to; -1 on pads."""
    num_pairs: int
    num_tokens: int
    """Non-pad tokens in input_ids."""
    packed_lengths: tuple[int, ...] | None = None
    """Packed layout: the 2B sequence lengths along the row; None: the padded layout."""
    is_filler: bool = False
    """Computed so every rank runs as many micro-batches, but counted nowhere (loss weight 0)."""

    @property
    def num_computed_tokens(self) -> int:
        """Tokens the model computes, pads included."""
        return self.input_ids.numel()

    def predicts_response(self) -> torch.Tensor:
        """(R, S-1) bool: the hidden state at t predicts token t+1, a response token of the same sequence (in a
        packed row the last token of a sequence never scores the next sequence's first)."""
        ids = self.sequence_ids
        return self.response_mask[:, 1:] & (ids[:, 1:] == ids[:, :-1])

    def sequence_lengths(self) -> list[int]:
        """Tokens of each of the 2B sequences, in order."""
        if self.packed_lengths is not None:
            return list(self.packed_lengths)
        return (self.sequence_ids >= 0).sum(dim=1).tolist()

    def to(self, device: torch.device | str) -> PairBatch:
        return replace(self, input_ids=self.input_ids.to(device), positions=self.positions.to(device),
                       response_mask=self.response_mask.to(device), sequence_ids=self.sequence_ids.to(device))


def pair_rows(pairs: list[TokenizedPair]) -> list[tuple[list[int], list[int]]]:
    """(prompt, response) of every chosen row, then of every rejected row."""
    return [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]


def collate_pairs(pairs: list[TokenizedPair], pad_id: int) -> PairBatch:
    """Tensors for `pairs`; S is the longest row of this batch, never more."""
    if not pairs:
        raise ValueError("collate_pairs needs at least one pair")
    rows = pair_rows(pairs)
    width = max(len(prompt) + len(response) for prompt, response in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (2B, S)
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (2B, S)
    sequence_ids = torch.full((len(rows), width), -1, dtype=torch.long)  # (2B, S)
    for i, (prompt, response) in enumerate(rows):
        length = len(prompt) + len(response)
        input_ids[i, :length] = torch.tensor(prompt + response, dtype=torch.long)
        response_mask[i, len(prompt):length] = True
        sequence_ids[i, :length] = i
    positions = torch.arange(width, dtype=torch.long).expand(len(rows), width).clone()  # (2B, S)
    num_tokens = sum(len(prompt) + len(response) for prompt, response in rows)
    return PairBatch(input_ids=input_ids, positions=positions, response_mask=response_mask,
                     sequence_ids=sequence_ids, num_pairs=len(pairs), num_tokens=num_tokens)


def collate_packed(pairs: list[TokenizedPair]) -> PairBatch:
    """`pairs` as one padding-free row (1, T): every sequence whole, in collate_pairs' order, positions restarting
    at 0 for each (the model confines attention to each sequence, from `packed_lengths`)."""
    if not pairs:
        raise ValueError("collate_packed needs at least one pair")
    rows = pair_rows(pairs)
    lengths = tuple(len(prompt) + len(response) for prompt, response in rows)
    input_ids = torch.tensor([t for prompt, response in rows for t in prompt + response], dtype=torch.long)
    positions = torch.cat([torch.arange(n, dtype=torch.long) for n in lengths])  # (T,)
    sequence_ids = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor(lengths))  # (T,)
    response_mask = torch.tensor([is_response for prompt, response in rows
                                  for is_response in [False] * len(prompt) + [True] * len(response)])
    return PairBatch(input_ids=input_ids[None], positions=positions[None], response_mask=response_mask[None],
                     sequence_ids=sequence_ids[None], num_pairs=len(pairs), num_tokens=sum(lengths),
                     packed_lengths=lengths)


def global_batch_indices(num_pairs: int, global_batch_size: int, step: int, seed: int) -> list[int]:
    """Pair indices for update `step` (0-based): items [step*G, (step+1)*G) of the concatenated epoch
    permutations, epoch e being `torch.randperm(num_pairs)` under a generator seeded by (seed, e).
    A global batch may straddle two epochs (or several when G > num_pairs)."""
    if num_pairs < 1:
        raise ValueError(f"no training pairs to batch (num_pairs={num_pairs})")
    if global_batch_size < 1 or step < 0:
        raise ValueError(f"need global_batch_size >= 1 and step >= 0, got {global_batch_size} and {step}")
    start = step * global_batch_size
    indices = []
    for item in range(start, start + global_batch_size):
        epoch, offset = divmod(item, num_pairs)
        indices.append(_epoch_permutation(num_pairs, seed, epoch)[offset])
    return indices


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed derived from (seed, epoch); distinct pairs give unrelated seeds."""
    return labelled_seed("epoch", seed, epoch)


@lru_cache(maxsize=4)
def _epoch_permutation(num_pairs: int, seed: int, epoch: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return tuple(torch.randperm(num_pairs, generator=generator).tolist())


def rank_slice(indices: list[int], rank: int, world_size: int) -> list[int]:
    """Rank `rank`'s contiguous share of a global batch: items [rank*k, (rank+1)*k) with k = len/world_size."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    if len(indices) % world_size:
        raise ValueError(f"a global batch of {len(indices)} pairs does not split evenly over {world_size} ranks: "
                         f"set trainer.train_batch_size to a multiple of {world_size}")
    share = len(indices) // world_size
    return indices[rank * share:(rank + 1) * share]
