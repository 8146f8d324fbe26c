"""Causal attention confined to each sequence of a packed (padding-free) training row.

The training forward's attention argument when pairs are packed end to end in one (1, T) row: no token attends
across a sequence boundary. On CPU it runs one causal SDPA per sequence (FlexAttention has no backward on CPU in
torch 2.13; a padded SDPA or a block-diagonal mask computes more, see docs/decisions.md). On CUDA with bf16/fp16
it is `torch.nn.attention.varlen.varlen_attn` (FlashAttention-2 varlen, with backward) over the whole row; this
path has not been run by the test suite, which has no GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
import torch.nn.functional as F

VARLEN_DTYPES = (torch.bfloat16, torch.float16)


class PackedAttention:
    """An `AttentionBackend` for training: q (1, T, Hq, D), k and v (1, T, Hkv, D), RoPE applied."""

    def __init__(self, lengths: Sequence[int], device: torch.device):
        self.lengths = list(lengths)
        self.ends = list(accumulate(lengths))
        self.max_len = max(lengths)
        self.device = device
        self._cu_seqlens = None

    def cu_seqlens(self) -> torch.Tensor:
        if self._cu_seqlens is None:
            self._cu_seqlens = torch.tensor([0] + self.ends, dtype=torch.int32, device=self.device)
        return self._cu_seqlens  # (num_sequences + 1,)

    def __call__(self, layer_index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        gqa = q.shape[2] != k.shape[2]
        if q.is_cuda and q.dtype in VARLEN_DTYPES:
            from torch.nn.attention.varlen import varlen_attn

            cu = self.cu_seqlens()
            out = varlen_attn(q[0], k[0], v[0], cu, cu, self.max_len, self.max_len, window_size=(-1, 0),
                              enable_gqa=gqa)  # (T, Hq, D); window (-1, 0) is causal
            return out[None]
        # split, not slicing: its backward is one concatenation, where each slice's would zero a whole-row gradient.
        pieces = (t.transpose(1, 2).split(self.lengths, dim=2) for t in (q, k, v))  # per sequence (1, H, s, D)
        outs = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=gqa)
                for qs, ks, vs in zip(*pieces)]
        return torch.cat(outs, dim=2).transpose(1, 2)  # (1, T, Hq, D)
