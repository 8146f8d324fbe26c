"""Which pairs each update uses (a pure function of the step) and how a list of pairs becomes tensors.

`global_batch_indices` walks an endless stream of seeded epoch permutations, so resuming needs only the
step; `rank_slice` gives each rank its contiguous part; `collate_pairs` right-pads chosen then rejected rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from simpo_live.data.tokenize import TokenizedPair
from simpo_live.seeds import labelled_seed


@dataclass
class PairBatch:
    input_ids: torch.Tensor
    """(2B, S) long: the B chosen rows, then the B rejected rows in the same order, right-padded with pad_id."""
    positions: torch.Tensor
    """(2B, S) long: 0..S-1 on every row (pads keep counting; causal attention keeps real tokens off them)."""
    response_mask: torch.Tensor
    """(2B, S) bool: True where the token is a response token (the logit predicting it sits at position-1)."""
    num_pairs: int
    num_tokens: int
    """Non-pad tokens in input_ids."""

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(input_ids=self.input_ids.to(device), positions=self.positions.to(device),
                         response_mask=self.response_mask.to(device), num_pairs=self.num_pairs,
                         num_tokens=self.num_tokens)


def collate_pairs(pairs: list[TokenizedPair], pad_id: int) -> PairBatch:
    """Tensors for `pairs`; S is the longest row of this batch, never more."""
    if not pairs:
        raise ValueError("collate_pairs needs at least one pair")
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    width = max(len(prompt) + len(response) for prompt, response in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (2B, S)
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (2B, S)
    for i, (prompt, response) in enumerate(rows):
        length = len(prompt) + len(response)
        input_ids[i, :length] = torch.tensor(prompt + response, dtype=torch.long)
        response_mask[i, len(prompt):length] = True
    positions = torch.arange(width, dtype=torch.long).expand(len(rows), width).clone()  # (2B, S)
    num_tokens = sum(len(prompt) + len(response) for prompt, response in rows)
    return PairBatch(input_ids=input_ids, positions=positions, response_mask=response_mask,
                     num_pairs=len(pairs), num_tokens=num_tokens)


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
