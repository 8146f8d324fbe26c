"""How much KV cache an engine gets: bytes per token, free device memory, pages that fit a share of it, and the
slots a page budget holds. The engine sizes its cache with these, and the memory plan (plan/) and the request
checks (rollout/requests.py) read the same rules from here: the one public module for engine capacity."""

from __future__ import annotations

from pathlib import Path

import torch

from simpo_live.engine.block_manager import PageSlots
from simpo_live.engine.params import EngineConfig
from simpo_live.intmath import ceil_div
from simpo_live.model.args import ModelArgs


def pages_for_tokens(num_tokens: int, page_size: int) -> int:
    """Pages of `page_size` tokens that hold `num_tokens`."""
    return ceil_div(num_tokens, page_size)


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
    sizing rule, the rule the memory plan's KV term follows (plan/terms.py)."""
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
