"""Length-normalised log-likelihood of each row's response tokens, computing logits only where they count."""

from __future__ import annotations

import torch

from simpo_live.data import PairBatch


def response_avg_logps(model: torch.nn.Module, batch: PairBatch, chunk_tokens: int = 0) -> torch.Tensor:
    """Average log p(response token | prefix) per row of batch.input_ids; (2B,) fp32.

    The lm_head runs only on positions that predict a response token: prompt and pad positions cost
    nothing there, which matters for large vocabularies. `chunk_tokens` > 0 runs it that many positions at a
    time (forward and backward), so the (N, vocab) logits never exist at once; 0 computes them all together.
    """
    predicts_response = batch.response_mask[:, 1:]  # the hidden state at t predicts token t+1
    row_index, col_index = predicts_response.nonzero(as_tuple=True)  # (N,), (N,)
    targets = batch.input_ids[row_index, col_index + 1]  # (N,)
    token_logps = model(batch.input_ids, batch.positions, logits_at=(row_index, col_index), target_ids=targets,
                        logprob_chunk_tokens=chunk_tokens)  # (N,) fp32
    num_rows = batch.input_ids.shape[0]
    sums = torch.zeros(num_rows, device=token_logps.device, dtype=torch.float32).index_add(0, row_index, token_logps)
    counts = predicts_response.sum(dim=1).clamp(min=1)
    return sums / counts
