"""The KV storage: the one factory that lays the cache out for the runner (its size is capacity.py's).

Two layouts, both fixed slots of max_seq_len positions within the page budget (block_manager.PageSlots), chosen by
device unless `EngineConfig.kv_layout` says otherwise:
- CPU: `chunked_slots.SlotCache`, chunk-major storage read in place by batched bmm;
- CUDA: `strided_slots.StridedSlotCache`, a token-major pool read by the Triton decode kernel (decode_kernel.py;
  the masked SDPA view where it cannot run), with decode-only rounds replayed as CUDA graphs (decode_graph.py).
Each cache plans and runs its own decode attention, so the attention backend never asks which one it has. Why these
two and the figures behind them: docs/decisions.md.
"""

from __future__ import annotations

import functools
import warnings

import torch

from simpo_live.engine.capacity import fixed_slots, kv_bytes_per_token
from simpo_live.engine.chunked_slots import SlotCache
from simpo_live.engine.decode_graph import DecodeGraphs
from simpo_live.engine.params import EngineConfig
from simpo_live.engine.runner import MIN_ROWS
from simpo_live.engine.storage import KVStorage
from simpo_live.engine.strided_slots import StridedSlotCache
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

def pick_decode_kernel(config: EngineConfig, args: ModelArgs, dtype: torch.dtype, device: torch.device):
    """The Triton decode attention for strided slots (decode_kernel.py) where `config.decode_attention` and the
    device allow it; None for the masked SDPA view."""
    if config.decode_attention == "sdpa" or (config.decode_attention == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        raise ValueError(f"engine config error: decode_attention 'triton' needs a CUDA device (got {device})")
    problem = decode_kernel_problem(args.num_attention_heads, args.num_key_value_heads, args.head_dim, dtype, device)
    if problem is None:
        from simpo_live.engine.decode_kernel import split_decode_attention

        return split_decode_attention
    if config.decode_attention == "triton":
        raise ValueError(f"engine config error: decode_attention 'triton' cannot run here: {problem}")
    warnings.warn(f"engine: the Triton decode attention is off on this device ({problem}); decode uses the "
                  "masked SDPA view (set decode_attention: sdpa to silence this)", RuntimeWarning, stacklevel=2)
    return None


@functools.cache
def decode_kernel_problem(num_heads: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                          device: torch.device) -> str | None:
    """Why the Triton decode kernel cannot serve this shape and device (checked once per process), or None."""
    try:
        from simpo_live.engine.decode_kernel import check_decode_kernel
    except ImportError as error:
        return f"triton is not importable: {error}"
    return check_decode_kernel(num_heads, num_kv_heads, head_dim, dtype, device)


def build_storage(config: EngineConfig, model: LlamaModel, num_pages: int, max_seq_len: int, dtype: torch.dtype,
                  device: torch.device) -> KVStorage:
    """The storage for `config` on `device`: chunk-major slots on CPU, strided slots with CUDA graphs on CUDA."""
    layout = config.kv_layout if config.kv_layout != "auto" else ("strided_slots" if device.type == "cuda" else "slots")
    placement = fixed_slots(config, num_pages, max_seq_len)
    num_bytes = kv_bytes_per_token(model.args, dtype) * placement.pool_tokens
    if layout == "slots":
        if config.decode_graphs == "on":
            raise ValueError("engine config error: decode_graphs 'on' needs kv_layout 'strided_slots' (got 'slots')")
        cache = SlotCache(model.args, placement.num_slots, placement.slot_tokens, dtype, device)
        return KVStorage(placement, cache, None, num_bytes)
    use_graphs = config.decode_graphs == "on" or (config.decode_graphs == "auto" and device.type == "cuda")
    kernel = pick_decode_kernel(config, model.args, dtype, device)
    cache = StridedSlotCache(model.args, placement.num_slots, placement.slot_tokens, dtype, device,
                             scratch_slot=use_graphs, decode_kernel=kernel)
    graphs = DecodeGraphs(model, cache, MIN_ROWS, capture=device.type == "cuda") if use_graphs else None
    return KVStorage(placement, cache, graphs, num_bytes)
