"""Causal attention confined to each sequence of a packed (padding-free) training row.

The training forward's attention argument when pairs are packed end to end in one (1, T) row: no token attends
across a sequence boundary. On CPU it runs one causal SDPA per sequence (FlexAttention has no backward on CPU in
torch 2.13; a padded SDPA or a block-diagonal mask computes more, see docs/decisions.md). On CUDA with bf16/fp16
it is the installed torch's `varlen_attn` (FlashAttention varlen, with backward) over the whole row, called through
`varlen.py`, which knows each supported version's signature. The tests run that branch on CPU with stand-ins of
each signature (`kernel=`); whether packing is used at all on a device is `train/layout.py`'s rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
import torch.nn.functional as F

from simpo_live.model.varlen import VARLEN_DTYPES, CausalVarlen, causal_varlen


class PackedAttention:
    """An `AttentionBackend` for training: q (1, T, Hq, D), k and v (1, T, Hkv, D), RoPE applied."""

    def __init__(self, lengths: Sequence[int], device: torch.device, kernel: CausalVarlen | None = None):
        self.lengths = list(lengths)
        self.kernel = kernel  # None: the installed varlen kernel for CUDA bf16/fp16 activations, else per sequence
        self.ends = list(accumulate(lengths))
        self.max_len = max(lengths)
        self.device = device
        self._cu_seqlens = None

    def cu_seqlens(self) -> torch.Tensor:
        if self._cu_seqlens is None:
            self._cu_seqlens = torch.tensor([0] + self.ends, dtype=torch.int32, device=self.device)
        return self._cu_seqlens  # (num_sequences + 1,)

    def kernel_for(self, q: torch.Tensor) -> CausalVarlen | None:
        if self.kernel is not None:
            return self.kernel
        return causal_varlen() if q.is_cuda and q.dtype in VARLEN_DTYPES else None

    def __call__(self, layer_index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel_for(q)
        if kernel is not None:
            return kernel(q[0], k[0], v[0], self.cu_seqlens(), self.max_len)[None]  # (1, T, Hq, D)
        gqa = q.shape[2] != k.shape[2]
        # split, not slicing: its backward is one concatenation, where each slice's would zero a whole-row gradient.
        pieces = (t.transpose(1, 2).split(self.lengths, dim=2) for t in (q, k, v))  # per sequence (1, H, s, D)
        outs = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=gqa)
                for qs, ks, vs in zip(*pieces)]
        return torch.cat(outs, dim=2).transpose(1, 2)  # (1, T, Hq, D)
