"""The KV storage: how large the cache is, and the one factory that lays it out for the runner.

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
from dataclasses import dataclass
from pathlib import Path

import torch

from simpo_live.engine.attention import KVCache
from simpo_live.engine.block_manager import PageSlots, Placement
from simpo_live.engine.chunked_slots import SlotCache
from simpo_live.engine.decode_graph import DecodeGraphs
from simpo_live.engine.params import EngineConfig
from simpo_live.engine.runner import MIN_ROWS
from simpo_live.engine.strided_slots import StridedSlotCache
from simpo_live.intmath import ceil_div
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

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


def pages_that_fit(free_bytes: int, hbm_utilization: float, page_size: int, args: ModelArgs,
                   dtype: torch.dtype) -> int:
    """KV pages of `page_size` tokens, stored in `dtype`, that `hbm_utilization` of `free_bytes` holds: the engine's
    sizing rule, which the eval's pre-flight (evals/preflight.py) applies to the memory training leaves free."""
    return int(free_bytes * hbm_utilization) // (page_size * kv_bytes_per_token(args, dtype))


def kv_cache_pages(config: EngineConfig, args: ModelArgs, max_seq_len: int, dtype: torch.dtype,
                   device: torch.device) -> int:
    """Pages to allocate: `max_pages`, else `hbm_utilization` of free memory, never more than could be used."""
    if config.max_pages is not None:
        return config.max_pages
    useful = ceil_div(config.max_seqs * max_seq_len, config.page_size)
    fit = pages_that_fit(free_memory_bytes(device), config.hbm_utilization, config.page_size, args, dtype)
    return max(1, min(useful, fit))


def fixed_slots(config: EngineConfig, num_pages: int, max_seq_len: int) -> PageSlots:
    """Slots of max_seq_len tokens that together fit the page budget: lower max_seq_len for more of them."""
    slot_pages = min(num_pages, ceil_div(max_seq_len, config.page_size))
    return PageSlots(num_pages, config.page_size, min(config.max_seqs, num_pages // slot_pages), slot_pages)


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


@dataclass
class KVStorage:
    """What the runner needs: where each sequence goes, the KV tensors (with their decode attention), and the
    bucketed decode forward when decode-only rounds use it."""

    placement: Placement
    cache: KVCache
    graphs: DecodeGraphs | None
    num_bytes: int


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
