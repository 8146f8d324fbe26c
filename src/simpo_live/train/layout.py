"""Which micro-batch layout a run trains with, packed (padding-free rows) or padded, by device and compute dtype.

The rule (figures in docs/decisions.md): on CPU packing is faster, so `auto` packs. On CUDA a packed row is only
fast through the varlen kernel (FlashAttention, bf16/fp16 only, torch >= 2.10: model/varlen.py); without it each
sequence is one SDPA launch, and an H200 trained the tiny fp32 preset packed slower than padded. So on CUDA `auto`
packs exactly when that kernel serves the compute dtype, and an explicit `true` that it cannot serve falls back to
the padded layout with a one-line warning, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simpo_live.model.varlen import VARLEN_DTYPES, causal_varlen


@dataclass(frozen=True)
class LayoutChoice:
    packed: bool
    warning: str | None = None  # set when `packing: true` was asked for and is not what runs


def choose_layout(requested: bool | str, device: torch.device, compute_dtype: torch.dtype) -> LayoutChoice:
    """`requested` is trainer.packing (true, false or "auto")."""
    if requested is False:
        return LayoutChoice(False)
    if device.type != "cuda":
        return LayoutChoice(True)
    missing = varlen_gap(compute_dtype)
    if missing is None:
        return LayoutChoice(True)
    if requested == "auto":
        return LayoutChoice(False)
    return LayoutChoice(False, f"trainer.packing: true needs the varlen attention kernel on CUDA, but {missing}; "
                               "training with the padded layout (set trainer.packing: false or auto to silence "
                               "this, or train in bf16)")


def varlen_gap(compute_dtype: torch.dtype) -> str | None:
    """Why the varlen kernel cannot run packed rows in `compute_dtype` on CUDA; None when it can."""
    if compute_dtype not in VARLEN_DTYPES:
        return f"it computes in bfloat16/float16 only and this run computes in {str(compute_dtype).removeprefix('torch.')}"
    if causal_varlen() is None:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen.varlen_attn (torch >= 2.10 has)"
    return None
