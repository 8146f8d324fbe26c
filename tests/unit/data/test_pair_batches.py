"""Collation (shapes, padding, positions, response mask) and the deterministic global-batch stream."""

from __future__ import annotations

import pytest
import torch

from simpo_live.data import (PreferenceRecord, TokenizedPair, collate_pairs, global_batch_indices, rank_slice,
                             tokenize_records)

PAD = 0


def pair(prompt: list[int], chosen: list[int], rejected: list[int]) -> TokenizedPair:
    return TokenizedPair(prompt_ids=prompt, chosen_ids=chosen, rejected_ids=rejected, source="x:1", prompt_text="")


def test_collate_layout_padding_and_mask():
    pairs = [pair([5, 6], [7, 8, 9], [10]), pair([11, 12, 13], [14], [15, 16])]
    batch = collate_pairs(pairs, PAD)
    assert batch.input_ids.tolist() == [
        [5, 6, 7, 8, 9],  # chosen 0
        [11, 12, 13, 14, 0],  # chosen 1
        [5, 6, 10, 0, 0],  # rejected 0
        [11, 12, 13, 15, 16],  # rejected 1
    ]
    assert batch.response_mask.int().tolist() == [
        [0, 0, 1, 1, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4]] * 4
    assert batch.input_ids.dtype == torch.long and batch.positions.dtype == torch.long
    assert batch.response_mask.dtype == torch.bool
    assert (batch.num_pairs, batch.num_tokens) == (2, 5 + 4 + 3 + 5)
    moved = batch.to("cpu")
    assert torch.equal(moved.input_ids, batch.input_ids) and moved.num_tokens == batch.num_tokens


def test_width_is_the_longest_row_of_this_batch():
    assert collate_pairs([pair([1], [2], [3])], PAD).input_ids.shape == (2, 2)
    assert collate_pairs([pair([1], [2], [3, 4, 5, 6])], PAD).input_ids.shape == (2, 5)


def test_masked_tokens_decode_to_the_responses(word_tokenizer):
    records = [PreferenceRecord([{"role": "user", "content": "w1 w2"}], "w2 w1", "w1", "f:1"),
               PreferenceRecord([{"role": "user", "content": "hello world w3"}], "w3", "world hello w3 w3", "f:2")]
    pairs, _ = tokenize_records(records, word_tokenizer, 64, 32, "error")
    batch = collate_pairs(pairs, word_tokenizer.pad_token_id)
    decoded = [word_tokenizer.decode(row[mask]) for row, mask in zip(batch.input_ids, batch.response_mask)]
    assert decoded == ["w2 w1 <|end|>", "w3 <|end|>", "w1 <|end|>", "world hello w3 w3 <|end|>"]
    assert batch.num_tokens == int((batch.input_ids != word_tokenizer.pad_token_id).sum())


def test_global_batches_are_a_pure_function_of_the_step():
    first = [global_batch_indices(10, 4, step, seed=3) for step in range(5)]
    again = [global_batch_indices(10, 4, step, seed=3) for step in reversed(range(5))][::-1]
    assert first == again
    assert global_batch_indices(10, 4, 0, seed=4) != first[0]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    stream = [i for step in range(5) for i in global_batch_indices(10, 4, step, seed=0)]  # 20 items = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10] != stream[10:]
    # Step 2 straddles the epoch boundary: items 8..11.
    assert global_batch_indices(10, 4, 2, seed=0) == stream[8:12]


def test_epoch_permutation_matches_the_documented_recipe():
    from simpo_live.data.batches import epoch_seed

    expected = torch.randperm(7, generator=torch.Generator().manual_seed(epoch_seed(5, 1))).tolist()
    assert global_batch_indices(7, 7, 1, seed=5) == expected


def test_batch_larger_than_the_data_spans_epochs():
    indices = global_batch_indices(3, 7, 0, seed=0)
    assert len(indices) == 7 and set(indices) == {0, 1, 2}


def test_rank_slice_is_contiguous_and_covers_the_batch():
    batch = list(range(100, 108))
    assert rank_slice(batch, 0, 2) == [100, 101, 102, 103]
    assert rank_slice(batch, 1, 2) == [104, 105, 106, 107]
    assert sum((rank_slice(batch, r, 4) for r in range(4)), []) == batch


def test_rank_slice_errors():
    with pytest.raises(ValueError, match="6 pairs does not split evenly over 4 ranks: set trainer.train_batch_size"):
        rank_slice(list(range(6)), 0, 4)
    with pytest.raises(ValueError, match="rank 2 is outside 0..1"):
        rank_slice(list(range(6)), 2, 2)
