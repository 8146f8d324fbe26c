"""Runs one scheduled round on the model: packs tokens, builds the attention metadata, computes logits for the
rows that sample, and calls the sampler. It never decides what runs (that is the scheduler's job).

Batch invariance on CPU: GEMM rows differ for small M, so the packed token batch and the logits batch are padded
to at least `MIN_ROWS` rows; attention per sequence; sampling noise per request.
"""

from __future__ import annotations

import torch

from simpo_live.engine.attention import PrefillSegment, StepAttention
from simpo_live.engine.sampler import sample
from simpo_live.engine.scheduler import Batch
from simpo_live.engine.storage import KVStorage
from simpo_live.model.llama import LlamaModel

MIN_ROWS = 16


class Runner:
    def __init__(self, model: LlamaModel, storage: KVStorage):
        self.model = model
        self.device = model.lm_head.weight.device
        self.cache = storage.cache
        self.graphs = storage.graphs  # decode-only rounds go through these when set (decode_graph.py)

    def close(self) -> None:
        self.cache.free()
        if self.graphs is not None:
            self.graphs.close()
            self.graphs = None

    def _attention(self, batch: Batch) -> tuple[list[int], list[int], StepAttention]:
        """Packed token ids and positions (decode rows, then prefill chunks), and the step's attention backend."""
        token_ids = [seq.token_ids[-1] for seq in batch.decode]
        positions = [seq.num_tokens - 1 for seq in batch.decode]
        spans = [(self.cache.locate(seq.kv_start), seq.num_tokens) for seq in batch.decode]
        segments = []
        for chunk in batch.prefill:
            row = len(token_ids)
            token_ids.extend(chunk.seq.token_ids[chunk.start:chunk.end])
            positions.extend(range(chunk.start, chunk.end))
            segments.append(PrefillSegment(row, len(token_ids), self.cache.locate(chunk.seq.kv_start), chunk.start))
        decode = self.cache.plan_decode(spans) if spans else None
        return token_ids, positions, StepAttention(self.cache, decode, segments)

    @torch.inference_mode()
    def run(self, batch: Batch) -> tuple[list[int], list[float] | None]:
        logits = self._decode_graph_logits(batch) if self.graphs is not None else None
        if logits is None:
            logits = self._logits(batch)
        if logits is None:
            return [], None  # only non-final prompt chunks ran: nothing to sample
        sampled = batch.sampled
        return sample(
            logits,
            params=[s.params for s in sampled],
            seeds=[s.seed for s in sampled],
            positions=[s.num_output_tokens for s in sampled],
            want_logprobs=any(s.params.logprobs for s in sampled),
        )

    def _decode_graph_logits(self, batch: Batch) -> torch.Tensor | None:
        if batch.prefill:
            return None
        return self.graphs.logits([seq.token_ids[-1] for seq in batch.decode],
                                  [seq.num_tokens - 1 for seq in batch.decode],
                                  [(self.cache.locate(seq.kv_start), seq.num_tokens) for seq in batch.decode])

    def _logits(self, batch: Batch) -> torch.Tensor | None:
        """Logits (R, V) of the rows that sample this round, decode rows first; None when no row samples."""
        token_ids, positions, attention = self._attention(batch)
        num_real = len(token_ids)
        num_rows = max(num_real, MIN_ROWS)
        ids = torch.zeros(1, num_rows, dtype=torch.long)
        ids[0, :num_real] = torch.tensor(token_ids)
        pos = torch.zeros(1, num_rows, dtype=torch.long)
        pos[0, :num_real] = torch.tensor(positions)
        hidden = self.model.hidden_states(ids.to(self.device), pos.to(self.device), attention)  # (1, T, H)
        rows = list(range(len(batch.decode)))
        rows += [seg.row_end - 1 for seg, chunk in zip(attention.prefill, batch.prefill) if chunk.is_last]
        if not rows:
            return None
        padded_rows = rows + [0] * max(0, MIN_ROWS - len(rows))
        selected = hidden[0].index_select(0, torch.tensor(padded_rows, device=self.device))  # (R', H)
        return self.model.lm_head(selected)[:len(rows)].float()  # (R, V)
