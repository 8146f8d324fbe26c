"""Length-normalised log-likelihood of each sequence's response tokens, computing logits only where they count."""

from __future__ import annotations

import torch

from simpo_live.data import PairBatch
from simpo_live.model.packed_attention import PackedAttention


def response_avg_logps(model: torch.nn.Module, batch: PairBatch, chunk_tokens: int = 0) -> torch.Tensor:
    """Average log p(response token | prefix) per sequence of the batch (chosen then rejected); (2B,) fp32.

    The lm_head runs only on positions that predict a response token of the same sequence: prompt and pad
    positions cost nothing there, which matters for large vocabularies. Packed rows attend within each sequence
    (PackedAttention). `chunk_tokens` > 0 runs it that many positions at a time
    (forward and backward), so the (N, vocab) logits never exist at once; 0 computes them all together.
    """
    predicts_response = batch.predicts_response()  # (R, S-1)
    row_index, col_index = predicts_response.nonzero(as_tuple=True)  # (N,), (N,)
    targets = batch.input_ids[row_index, col_index + 1]  # (N,)
    attention = (PackedAttention(batch.packed_lengths, batch.input_ids.device)
                 if batch.packed_lengths is not None else None)
    token_logps = model(batch.input_ids, batch.positions, attention=attention, logits_at=(row_index, col_index),
                        target_ids=targets, logprob_chunk_tokens=chunk_tokens)  # (N,) fp32
    sequence = batch.sequence_ids[row_index, col_index]  # (N,)
    num_sequences = 2 * batch.num_pairs
    sums = torch.zeros(num_sequences, device=token_logps.device, dtype=torch.float32).index_add(0, sequence,
                                                                                              token_logps)
    counts = torch.bincount(sequence, minlength=num_sequences).clamp(min=1)
    return sums / counts
