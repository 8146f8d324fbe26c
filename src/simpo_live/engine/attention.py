"""The attention backend the model calls during an engine step: rows [0, B) are decode tokens, then prefill
chunks, then padding rows. Prefill is one SDPA per prompt chunk over its own context (packed tokens, no padding,
batch-invariant); decode rows go to the KV cache's own decode attention (chunked_slots.py, strided_slots.py),
planned once per step by the cache. What a cache must offer is `KVCache`; which one runs is kv_cache.py's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

DecodePlan = Any  # a cache's own decode metadata for one step; it has `num_rows`


class KVCache(Protocol):
    """Keys and values of every sequence, addressed by a handle (`locate`), with the decode attention that suits
    the layout. Bucketed decode rounds (decode_graph.py) also need `scratch_handle` and `plan_bucket`."""

    dtype: torch.dtype

    def locate(self, kv_start: int) -> int:
        """The handle of the sequence placed at pool offset `kv_start`."""

    def write(self, layer: int, handle: int, position: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (n, Hkv, D) at positions [position, position + n) of the sequence."""

    def context(self, layer: int, handle: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (Hkv, length, D) of positions [0, length) of the sequence."""

    def plan_decode(self, spans: list[tuple[int, int]]) -> DecodePlan:
        """Metadata for decode rows spans[i] = (handle, length incl. the new token), used by every layer."""

    def decode(self, layer: int, plan: DecodePlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Write the decode rows' k, v (B, Hkv, D) and attend with q (B, Hq, D) -> (B, Hq, D)."""

    def free(self) -> None:
        """Drop the tensors."""


@dataclass
class PrefillSegment:
    """Packed rows [row_start, row_end) are prompt positions [context_start, ...) of the sequence whose cache
    handle (`KVCache.locate`) is `handle`."""

    row_start: int
    row_end: int
    handle: int
    context_start: int


@dataclass
class StepAttention:
    """The model's attention backend for one step. Built by the runner, passed to the model as an argument."""

    cache: KVCache
    decode: DecodePlan | None
    prefill: list[PrefillSegment]
    _masks: dict = field(default_factory=dict)

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        model_dtype = q.dtype  # the cache may be stored narrower than the model computes (e.g. bf16 KV)
        q, k, v = (t[0].to(self.cache.dtype) for t in (q, k, v))  # (T, Hq, D), (T, Hkv, D), (T, Hkv, D)
        pieces = []
        if self.decode is not None:
            rows = self.decode.num_rows
            pieces.append(self.cache.decode(layer, self.decode, q[:rows], k[:rows], v[:rows]))
        for seg in self.prefill:
            pieces.append(self._prefill(layer, seg, q, k, v))
        num_rows = q.shape[0] - sum(p.shape[0] for p in pieces)
        if num_rows:
            pieces.append(q.new_zeros(num_rows, *q.shape[1:]))
        return torch.cat(pieces).unsqueeze(0).to(model_dtype)  # (1, T, Hq, D)

    def _prefill(self, layer: int, seg: PrefillSegment, q, k, v) -> torch.Tensor:
        n = seg.row_end - seg.row_start
        groups = q.shape[1] // k.shape[1]
        k_new, v_new = k[seg.row_start:seg.row_end], v[seg.row_start:seg.row_end]  # (n, Hkv, D)
        self.cache.write(layer, seg.handle, seg.context_start, k_new, v_new)
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
            keys, values = self.cache.context(layer, seg.handle, context)
            out = F.scaled_dot_product_attention(q_seg, keys, values, attn_mask=self._masks[key],
                                                 enable_gqa=groups > 1)
        return out.transpose(0, 1)  # (n, Hq, D)
