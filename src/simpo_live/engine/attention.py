"""The attention backend the model calls during an engine step: rows [0, B) are decode tokens, then prefill
chunks, then padding rows. It writes the step's keys and values into the KV cache (kv_cache.py) and attends:
- prefill: one SDPA per prompt chunk over its own context (packed tokens, no padding, batch-invariant);
- decode over the slot cache (CPU default): chunk-wise bmm over ranges of slots (slot_attention.py);
- decode "gather" over the run cache (CUDA default): gather contexts into (B, Hkv, round_up(longest, 16), D), one
  SDPA with a length mask;
- decode "loop" (either cache): one exact-length SDPA per sequence, the plainest reference path.
On CPU a row's arithmetic never depends on its batch-mates (research sections 2 and 6; slot_attention.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from simpo_live.engine.kv_cache import RunCache, SlotCache
from simpo_live.engine.slot_attention import SlotDecodePlan, plan_slot_decode, slot_decode_attention


@dataclass
class PrefillSegment:
    """Packed rows [row_start, row_end) are prompt positions [context_start, ...) of the sequence whose cache
    handle (kv_cache `locate`) is `where`."""

    row_start: int
    row_end: int
    where: int
    context_start: int


@dataclass
class RowDecodePlan:
    """Decode rows of one step, loop or gather mode. `spans[i]` = (cache handle, context length incl. the new
    token) of decode row i."""

    spans: list[tuple[int, int]]
    gather: bool
    write_index: torch.Tensor | None = None  # gather: (B,) pool position of each row's new token
    gather_index: torch.Tensor | None = None  # gather: (B, Lpad) pool positions, clamped to each row's last
    mask: torch.Tensor | None = None  # gather: (B, 1, 1, Lpad) True where attended

    @property
    def num_rows(self) -> int:
        return len(self.spans)


@dataclass
class SlotViewPlan:
    """Decode rows over a token-major pool placed in fixed slots (kv_layout "strided_slots"): slots [0, num_slots)
    viewed as (slots, Hkv, padded_len, D) with no copy; row i is the sequence in slot row_slots[i]."""

    num_slots: int
    padded_len: int
    row_slots: torch.Tensor  # (B,)
    write_index: torch.Tensor  # (B,) pool position of each row's new token
    mask: torch.Tensor  # (num_slots, 1, 1, padded_len) True where attended; idle slots see position 0 only

    @property
    def num_rows(self) -> int:
        return self.row_slots.shape[0]


def slot_view_plan(row_slots: torch.Tensor, lengths: torch.Tensor, num_slots: int, padded_len: int,
                   slot_len: int) -> SlotViewPlan:
    """Built from device tensors only, so a CUDA graph can build it from its static inputs (decode_graph.py)."""
    slot_lengths = torch.ones(num_slots, dtype=lengths.dtype, device=lengths.device).index_copy_(0, row_slots, lengths)
    offsets = torch.arange(padded_len, device=lengths.device)
    mask = (offsets < slot_lengths.unsqueeze(-1)).view(num_slots, 1, 1, padded_len)
    return SlotViewPlan(num_slots, padded_len, row_slots, row_slots * slot_len + lengths - 1, mask)


DecodePlan = RowDecodePlan | SlotDecodePlan | SlotViewPlan


def plan_decode(cache: RunCache | SlotCache, spans: list[tuple[int, int]], mode: str) -> DecodePlan:
    """Metadata for `mode` in ("loop", "batched"), built once per step and used by every layer."""
    if mode == "loop":
        return RowDecodePlan(spans, gather=False)
    if isinstance(cache, SlotCache):
        return plan_slot_decode(cache, [where for where, _ in spans], [n for _, n in spans])
    device = cache.k[0].device
    if cache.slot_len:
        slots = [start // cache.slot_len for start, _ in spans]
        padded_len = min(-(-max(n for _, n in spans) // 16) * 16, cache.slot_len)  # multiples of 16: equal rows
        return slot_view_plan(torch.tensor(slots, device=device), torch.tensor([n for _, n in spans], device=device),
                              max(slots) + 1, padded_len, cache.slot_len)
    padded_len = -(-max(n for _, n in spans) // 16) * 16  # any multiple of 16 gives equal rows on CPU
    offsets = torch.arange(padded_len, device=device)
    starts = torch.tensor([start for start, _ in spans], device=device).unsqueeze(-1)
    lengths = torch.tensor([n for _, n in spans], device=device).unsqueeze(-1)
    return RowDecodePlan(spans, gather=True, write_index=(starts + lengths - 1).squeeze(-1),
                         gather_index=starts + torch.minimum(offsets, lengths - 1),
                         mask=(offsets < lengths).view(len(spans), 1, 1, padded_len))


@dataclass
class StepAttention:
    """The model's attention backend for one step. Built by the runner, passed to the model as an argument."""

    cache: RunCache | SlotCache
    decode: DecodePlan | None
    prefill: list[PrefillSegment]
    _masks: dict = field(default_factory=dict)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        model_dtype = q.dtype  # the cache may be stored narrower than the model computes (e.g. bf16 KV)
        q, k, v = (t[0].to(self.cache.dtype) for t in (q, k, v))  # (T, Hq, D), (T, Hkv, D), (T, Hkv, D)
        pieces = []
        if self.decode is not None:
            rows = self.decode.num_rows
            if isinstance(self.decode, SlotDecodePlan):
                pieces.append(slot_decode_attention(self.cache, layer, self.decode, q[:rows], k[:rows], v[:rows]))
            elif isinstance(self.decode, SlotViewPlan):
                pieces.append(self._decode_slot_view(layer, q[:rows], k[:rows], v[:rows]))
            else:
                pieces.append(self._decode_rows(layer, q[:rows], k[:rows], v[:rows]))
        for seg in self.prefill:
            pieces.append(self._prefill(layer, seg, q, k, v))
        num_rows = q.shape[0] - sum(p.shape[0] for p in pieces)
        if num_rows:
            pieces.append(q.new_zeros(num_rows, *q.shape[1:]))
        return torch.cat(pieces).unsqueeze(0).to(model_dtype)  # (1, T, Hq, D)

    def _decode_rows(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        plan = self.decode
        rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        q_fold = q.view(rows, num_kv_heads, num_heads // num_kv_heads, head_dim)  # GQA folded into query rows
        if plan.gather:
            cache_k, cache_v = self.cache.k[layer], self.cache.v[layer]
            cache_k.index_copy_(0, plan.write_index, k)  # (N, Hkv, D) pools; cheaper than an index_put
            cache_v.index_copy_(0, plan.write_index, v)
            shape = (rows, plan.gather_index.shape[1], num_kv_heads, head_dim)
            keys = cache_k.index_select(0, plan.gather_index.view(-1)).view(shape).transpose(1, 2)  # (B, Hkv, L, D)
            values = cache_v.index_select(0, plan.gather_index.view(-1)).view(shape).transpose(1, 2)
            out = F.scaled_dot_product_attention(q_fold, keys, values, attn_mask=plan.mask)
            return out.reshape(rows, num_heads, head_dim)
        out = q.new_empty(rows, num_heads, head_dim)
        for i, (where, length) in enumerate(plan.spans):
            self.cache.write(layer, where, length - 1, k[i:i + 1], v[i:i + 1])
            keys, values = self.cache.context(layer, where, length)
            out[i] = F.scaled_dot_product_attention(q_fold[i], keys, values).view(num_heads, head_dim)
        return out

    def _decode_slot_view(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        plan = self.decode
        rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        cache_k, cache_v = self.cache.k[layer], self.cache.v[layer]
        cache_k.index_copy_(0, plan.write_index, k)
        cache_v.index_copy_(0, plan.write_index, v)
        q_fold = q.view(rows, num_kv_heads, num_heads // num_kv_heads, head_dim)  # GQA folded into query rows
        q_slots = q.new_zeros(plan.num_slots, *q_fold.shape[1:]).index_copy_(0, plan.row_slots, q_fold)

        def slot_view(pool: torch.Tensor) -> torch.Tensor:  # (N, Hkv, D) -> (slots, Hkv, padded_len, D), no copy
            extent = plan.num_slots * self.cache.slot_len
            return pool[:extent].view(plan.num_slots, self.cache.slot_len, num_kv_heads, head_dim)[
                :, :plan.padded_len].transpose(1, 2)

        out = F.scaled_dot_product_attention(q_slots, slot_view(cache_k), slot_view(cache_v), attn_mask=plan.mask)
        return out.index_select(0, plan.row_slots).reshape(rows, num_heads, head_dim)

    def _prefill(self, layer: int, seg: PrefillSegment, q, k, v) -> torch.Tensor:
        n = seg.row_end - seg.row_start
        groups = q.shape[1] // k.shape[1]
        k_new, v_new = k[seg.row_start:seg.row_end], v[seg.row_start:seg.row_end]  # (n, Hkv, D)
        self.cache.write(layer, seg.where, seg.context_start, k_new, v_new)
        q_seg = q[seg.row_start:seg.row_end].transpose(0, 1)  # (Hq, n, D)
        if seg.context_start == 0:
            out = F.scaled_dot_product_attention(q_seg, k_new.transpose(0, 1), v_new.transpose(0, 1),
                                                 is_causal=True, enable_gqa=groups > 1)
        else:
            context = seg.context_start + n
            # A later chunk sees the cached prompt before it plus itself causally: a bottom-right aligned mask.
            key = (n, context)
            if key not in self._masks:
                rows = torch.arange(n, device=q.device).unsqueeze(-1) + seg.context_start
                self._masks[key] = torch.arange(context, device=q.device).unsqueeze(0) <= rows  # (n, context)
            keys, values = self.cache.context(layer, seg.where, context)
            out = F.scaled_dot_product_attention(q_seg, keys, values, attn_mask=self._masks[key],
                                                 enable_gqa=groups > 1)
        return out.transpose(0, 1)  # (n, Hq, D)
