"""The variable-length (FlashAttention) kernel this torch has, called through one causal, GQA-aware signature.

`torch.nn.attention.varlen.varlen_attn` has changed between releases: torch 2.10 takes `is_causal`, 2.11 a
keyword-only `window_size` and no GQA argument, 2.13 adds `enable_gqa`. `adapt_varlen` reads whichever signature a
function has and calls it the way that version accepts (KV heads repeated where it cannot take fewer than the query
heads); a torch without the module has no varlen kernel at all (None), and the trainer then uses the padded layout.
It does not decide when the kernel runs: `packed_attention.py` and `train/layout.py` do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import torch

VARLEN_DTYPES = (torch.bfloat16, torch.float16)  # FlashAttention computes in these only


@dataclass(frozen=True)
class CausalVarlen:
    """`fn` (a `varlen_attn`) called causally: q (T, Hq, D), k and v (T, Hkv, D) -> (T, Hq, D)."""

    fn: Callable
    causal_kwargs: dict = field(hash=False)  # {"window_size": (-1, 0)} (2.11+) or {"is_causal": True} (2.10)
    takes_gqa: bool  # the signature has `enable_gqa`

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                 max_len: int) -> torch.Tensor:
        kwargs = dict(self.causal_kwargs)
        groups = q.shape[1] // k.shape[1]
        if groups > 1 and self.takes_gqa:
            kwargs["enable_gqa"] = True
        elif groups > 1:
            # Query head h reads KV head h // groups, SDPA's enable_gqa convention.
            k, v = (t.repeat_interleave(groups, dim=1) for t in (k, v))  # (T, Hq, D)
        return self.fn(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, **kwargs)


def adapt_varlen(fn: Callable) -> CausalVarlen | None:
    """`fn` called causally, or None when its signature has no way to ask for causal attention."""
    params = inspect.signature(fn).parameters
    if "window_size" in params:
        causal = {"window_size": (-1, 0)}  # (left unbounded, right 0) is causal
    elif "is_causal" in params:
        causal = {"is_causal": True}
    else:
        return None
    return CausalVarlen(fn, causal, "enable_gqa" in params)


def installed_varlen_attn() -> Callable | None:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch before 2.10
        return None
    return varlen_attn


@cache
def causal_varlen() -> CausalVarlen | None:
    """The installed torch's varlen kernel, adapted; None where it has none."""
    fn = installed_varlen_attn()
    return None if fn is None else adapt_varlen(fn)
