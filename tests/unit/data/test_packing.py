"""Packed micro-batches: the packed row's layout, the token budget, and as many micro-batches on every rank."""

import torch

from simpo_live.data import MicroBatching, TokenizedPair, collate_packed, rank_micro_batches
from simpo_live.data.packing import pair_tokens, plan_groups


def pair(prompt, chosen, rejected) -> TokenizedPair:
    return TokenizedPair(prompt, chosen, rejected, "t", "")


def test_packed_row_lays_sequences_end_to_end_with_restarting_positions():
    batch = collate_packed([pair([1, 2], [3], [4, 5]), pair([6], [7, 8], [9])])
    # Chosen of both pairs, then rejected of both: [1 2 3] [6 7 8] [1 2 4 5] [6 9]
    assert batch.input_ids.tolist() == [[1, 2, 3, 6, 7, 8, 1, 2, 4, 5, 6, 9]]
    assert batch.positions.tolist() == [[0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1]]
    assert batch.sequence_ids.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3]]
    assert batch.response_mask.int().tolist() == [[0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1]]
    assert batch.packed_lengths == (3, 3, 4, 2) and batch.num_tokens == batch.num_computed_tokens == 12
    # Position 2 (token 3, sequence 0's last) is followed by token 6, a prompt token: never scored. Position 9
    # (token 5) is followed by 6, sequence 3's prompt: not scored either, though both are in one row.
    assert batch.predicts_response().int().tolist() == [[0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1]]


def test_micro_batches_are_consecutive_pairs_within_both_caps():
    pairs = [pair([1], [2] * n, [3] * n) for n in (2, 1, 1, 3, 9, 1)]  # 6, 4, 4, 8, 20, 4 tokens
    groups = lambda size, tokens: plan_groups(pairs, MicroBatching(True, size, tokens))  # noqa: E731
    # Budget 12: 6+4 fit, +4 would be 14; 4+8 = 12; 20 is over the budget alone; then 4.
    assert groups(10, 12) == [[0, 1], [2, 3], [4], [5]]
    assert groups(3, 100) == [[0, 1, 2], [3, 4, 5]]  # the pair cap
    assert plan_groups(pairs, MicroBatching(False, 4, 12)) == [[0, 1, 2, 3], [4, 5]]  # padded: pairs only


def test_every_rank_runs_as_many_micro_batches_the_short_ones_ending_with_fillers():
    long_pair, short_pair = pair([1] * 10, [2] * 10, [3] * 10), pair([1], [2], [3])
    shares = [[long_pair, long_pair], [short_pair, short_pair]]  # rank 0 needs 2 micro-batches, rank 1 one
    batching = MicroBatching(packed=True, micro_batch_size=2, micro_batch_tokens=pair_tokens(long_pair))
    assert pair_tokens(long_pair) == 40
    rank0 = rank_micro_batches(shares, 0, batching, pad_id=0)
    rank1 = rank_micro_batches(shares, 1, batching, pad_id=0)
    assert [b.num_pairs for b in rank0] == [1, 1] and not any(b.is_filler for b in rank0)
    assert [b.num_pairs for b in rank1] == [2, 1] and [b.is_filler for b in rank1] == [False, True]
    assert rank1[1].num_tokens == pair_tokens(short_pair)  # the filler is the rank's smallest pair


def test_padded_micro_batches_are_the_reference_layout():
    pairs = [pair([1], [2] * k, [3]) for k in range(1, 6)]
    batches = rank_micro_batches([pairs], 0, MicroBatching(False, 2, 0), pad_id=0)
    assert [b.input_ids.shape for b in batches] == [torch.Size([4, 3]), torch.Size([4, 5]), torch.Size([2, 6])]
    assert all(b.packed_lengths is None for b in batches)
