"""The KV cache tensors, their sizing, and the attention backend the model calls during an engine step.

Storage is one flat pool per layer, k and v each (num_kv_heads, num_pages * page_size, head_dim); a sequence's
pages are one contiguous run (see block_manager.py), so its context is a contiguous view. Attention per step:
- prefill: one SDPA per prompt chunk over its own context (packed tokens, no padding, batch-invariant);
- decode "loop" (CPU default): one exact-length SDPA per sequence with the query heads of each KV head folded into
  query rows, so a row's arithmetic never depends on its batch-mates (research/engine_options.md, sections 2, 6);
- decode "batched" (CUDA default): gather every context into (B, Hkv, round_up(max_len, 16), D) and run one
  masked SDPA, trading a copy for one kernel launch per layer instead of one per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from simpo_live.model.args import ModelArgs


def kv_bytes_per_token(args: ModelArgs, dtype: torch.dtype) -> int:
    element_size = torch.empty((), dtype=dtype).element_size()
    return 2 * args.num_hidden_layers * args.num_key_value_heads * args.head_dim * element_size


def free_memory_bytes(device: torch.device) -> int:
    """Free device memory on CUDA; MemAvailable from /proc/meminfo on CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 << 30  # no /proc (e.g. macOS): assume a modest 8 GiB rather than guess high


class KVCache:
    """Keys and values of every cached token, one pair of tensors per layer (never one stacked tensor: slicing
    a layer out of a stacked cache misbehaves under torch.compile, research section 2.6)."""

    def __init__(self, args: ModelArgs, num_tokens: int, dtype: torch.dtype, device: torch.device):
        shape = (args.num_key_value_heads, num_tokens, args.head_dim)  # (Hkv, N, D)
        # empty, not zeros: on CPU untouched pages cost no RAM, and every slot is written before it is read.
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.num_bytes = kv_bytes_per_token(args, dtype) * num_tokens

    def free(self) -> None:
        self.k, self.v = [], []


@dataclass
class PrefillSegment:
    """Packed rows [row_start, row_end) are prompt positions [context_start, ...) of the sequence at `base`."""

    row_start: int
    row_end: int
    base: int
    context_start: int


@dataclass
class StepAttention:
    """The model's attention backend for one step: rows [0, num_decode) are decode tokens, then prefill segments,
    then padding rows (ignored, output zero). Built by the runner, passed to the model as an argument."""

    cache: KVCache
    num_decode: int
    decode_write_index: torch.Tensor | None  # (num_decode,) cache slot of each decode row's new token
    decode_spans: list[tuple[int, int]]  # (base, context length incl. the new token) per decode row
    prefill: list[PrefillSegment]
    batched_decode: bool = False
    gather_index: torch.Tensor | None = None  # (num_decode, Lpad) cache slots, batched decode only
    gather_mask: torch.Tensor | None = None  # (num_decode, 1, 1, Lpad) True where attended
    _masks: dict = field(default_factory=dict)

    def __call__(self, layer_index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = q[0], k[0], v[0]  # (T, Hq, D), (T, Hkv, D), (T, Hkv, D)
        num_rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        groups = num_heads // num_kv_heads
        cache_k, cache_v = self.cache.k[layer_index], self.cache.v[layer_index]  # (Hkv, N, D)
        pieces = []
        nd = self.num_decode
        if nd:
            cache_k[:, self.decode_write_index] = k[:nd].transpose(0, 1)
            cache_v[:, self.decode_write_index] = v[:nd].transpose(0, 1)
            q_fold = q[:nd].view(nd, num_kv_heads, groups, head_dim)  # GQA folded into query rows
            if self.batched_decode:
                keys = cache_k[:, self.gather_index].transpose(0, 1)  # (B, Hkv, Lpad, D)
                values = cache_v[:, self.gather_index].transpose(0, 1)
                out = F.scaled_dot_product_attention(q_fold, keys, values, attn_mask=self.gather_mask)
                pieces.append(out.reshape(nd, num_heads, head_dim))
            else:
                for i, (base, length) in enumerate(self.decode_spans):
                    out = F.scaled_dot_product_attention(
                        q_fold[i], cache_k[:, base:base + length], cache_v[:, base:base + length])  # (Hkv, G, D)
                    pieces.append(out.view(1, num_heads, head_dim))
        for seg in self.prefill:
            n = seg.row_end - seg.row_start
            lo = seg.base + seg.context_start
            cache_k[:, lo:lo + n] = k[seg.row_start:seg.row_end].transpose(0, 1)
            cache_v[:, lo:lo + n] = v[seg.row_start:seg.row_end].transpose(0, 1)
            q_seg = q[seg.row_start:seg.row_end].transpose(0, 1)  # (Hq, n, D)
            if seg.context_start == 0:
                out = F.scaled_dot_product_attention(
                    q_seg, k[seg.row_start:seg.row_end].transpose(0, 1), v[seg.row_start:seg.row_end].transpose(0, 1),
                    is_causal=True, enable_gqa=groups > 1)
            else:
                context = seg.context_start + n
                # A later chunk sees the cached prompt before it plus itself causally: bottom-right aligned mask.
                mask = self._chunk_mask(n, context, q.device)
                out = F.scaled_dot_product_attention(
                    q_seg, cache_k[:, seg.base:seg.base + context], cache_v[:, seg.base:seg.base + context],
                    attn_mask=mask, enable_gqa=groups > 1)
            pieces.append(out.transpose(0, 1))  # (n, Hq, D)
        num_padding = num_rows - nd - sum(s.row_end - s.row_start for s in self.prefill)
        if num_padding:
            pieces.append(q.new_zeros(num_padding, num_heads, head_dim))
        return torch.cat(pieces).unsqueeze(0)  # (1, T, Hq, D)

    def _chunk_mask(self, n: int, context: int, device: torch.device) -> torch.Tensor:
        key = (n, context)
        if key not in self._masks:
            rows = torch.arange(n, device=device).unsqueeze(-1) + (context - n)
            self._masks[key] = torch.arange(context, device=device).unsqueeze(0) <= rows  # (n, context)
        return self._masks[key]
