"""Runs one scheduled round on the model: packs tokens, builds the attention metadata, computes logits for the
rows that sample, and calls the sampler. It never decides what runs (that is the scheduler's job).

Batch invariance on CPU (research/engine_options.md section 6): GEMM rows differ for small M, so the packed
token batch and the logits batch are padded to at least `MIN_ROWS` rows; attention per sequence; sampling
noise per request.
"""

from __future__ import annotations

import torch

from simpo_live.engine.attention import KVCache, PrefillSegment, StepAttention
from simpo_live.engine.sampler import sample
from simpo_live.engine.scheduler import Batch
from simpo_live.model.llama import LlamaModel

MIN_ROWS = 16


class Runner:
    def __init__(self, model: LlamaModel, num_pages: int, page_size: int, dtype: torch.dtype,
                 batched_decode: bool):
        self.model = model
        self.page_size = page_size
        self.device = model.lm_head.weight.device
        self.batched_decode = batched_decode
        self.cache = KVCache(model.args, num_pages * page_size, dtype, self.device)

    def close(self) -> None:
        self.cache.free()

    def _attention(self, batch: Batch) -> tuple[list[int], list[int], StepAttention]:
        """Packed token ids and positions (decode rows, then prefill chunks), and the step's attention backend."""
        token_ids, positions, spans = [], [], []
        write = []
        for seq in batch.decode:
            base = seq.first_page * self.page_size
            position = seq.num_tokens - 1
            token_ids.append(seq.token_ids[-1])
            positions.append(position)
            write.append(base + position)
            spans.append((base, position + 1))
        segments = []
        for chunk in batch.prefill:
            row = len(token_ids)
            token_ids.extend(chunk.seq.token_ids[chunk.start:chunk.end])
            positions.extend(range(chunk.start, chunk.end))
            segments.append(PrefillSegment(row, len(token_ids), chunk.seq.first_page * self.page_size, chunk.start))
        attention = StepAttention(
            cache=self.cache, num_decode=len(write),
            decode_write_index=torch.tensor(write, device=self.device) if write else None,
            decode_spans=spans, prefill=segments, batched_decode=self.batched_decode,
        )
        if self.batched_decode and spans:
            max_len = -(-max(length for _, length in spans) // 16) * 16  # any multiple of 16 gives equal rows
            offsets = torch.arange(max_len, device=self.device)
            bases = torch.tensor([b for b, _ in spans], device=self.device).unsqueeze(-1)
            lengths = torch.tensor([n for _, n in spans], device=self.device).unsqueeze(-1)
            # Past a row's length the index is clamped to its last token; the mask hides those columns.
            attention.gather_index = bases + torch.minimum(offsets, lengths - 1)  # (B, Lpad)
            attention.gather_mask = (offsets < lengths).view(len(spans), 1, 1, max_len)
        return token_ids, positions, attention

    @torch.inference_mode()
    def run(self, batch: Batch) -> tuple[list[int], list[float] | None]:
        token_ids, positions, attention = self._attention(batch)
        num_real = len(token_ids)
        num_rows = max(num_real, MIN_ROWS)
        ids = torch.zeros(1, num_rows, dtype=torch.long)
        ids[0, :num_real] = torch.tensor(token_ids)
        pos = torch.zeros(1, num_rows, dtype=torch.long)
        pos[0, :num_real] = torch.tensor(positions)
        hidden = self.model.hidden_states(ids.to(self.device), pos.to(self.device), attention)  # (1, T, H)
        sampled = batch.sampled
        rows = list(range(len(batch.decode)))
        rows += [seg.row_end - 1 for seg, chunk in zip(attention.prefill, batch.prefill) if chunk.is_last]
        if not rows:
            return [], None  # only non-final prompt chunks ran: nothing to sample
        padded_rows = rows + [0] * max(0, MIN_ROWS - len(rows))
        selected = hidden[0].index_select(0, torch.tensor(padded_rows, device=self.device))  # (R', H)
        logits = self.model.lm_head(selected)[:len(rows)].float()  # (R, V)
        return sample(
            logits,
            params=[s.params for s in sampled],
            seeds=[s.seed for s in sampled],
            positions=[s.num_output_tokens for s in sampled],
            want_logprobs=any(s.params.logprobs for s in sampled),
        )
