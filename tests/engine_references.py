"""KV layouts no default uses, kept as references the engine's outputs are compared against (tests/unit/engine).

- `page_runs(gather=True)`: first-fit contiguous page runs in one token-major pool; decode gathers every row's
  context into (B, Hkv, round_up(longest, 16), D) and runs one SDPA with a length mask. Also drives the bucketed
  decode forward (decode_graph.py) when `decode_graphs="on"`.
- `page_runs(gather=False)` and `loop_decode(factory)`: decode as one exact-length SDPA per sequence, over page
  runs or over any production layout: the plainest path there is.
Each returns a storage factory for `Engine(..., storage_factory=...)`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from simpo_live.engine.decode_graph import DecodeGraphs
from simpo_live.engine.capacity import kv_bytes_per_token
from simpo_live.engine.storage import KVStorage
from simpo_live.engine.runner import MIN_ROWS
from simpo_live.intmath import ceil_div, round_up


class PageRuns:
    """Free-list of page runs over `num_pages` pages of `page_size` tokens."""

    def __init__(self, num_pages: int, page_size: int):
        self.num_pages = num_pages
        self.page_size = page_size
        self.pool_tokens = num_pages * page_size
        self._free_starts: list[int] = [0]  # sorted starts of free runs, in pages
        self._free_len: dict[int, int] = {0: num_pages}

    @property
    def num_free_pages(self) -> int:
        return sum(self._free_len.values())

    def pages_needed(self, num_tokens: int) -> int:
        return ceil_div(num_tokens, self.page_size)

    def _find_run(self, num_pages: int) -> int | None:
        for start in self._free_starts:
            if self._free_len[start] >= num_pages:
                return start
        return None

    def can_allocate(self, num_tokens: int) -> bool:
        return self._find_run(self.pages_needed(num_tokens)) is not None

    def allocate(self, num_tokens: int) -> tuple[int, int]:
        """Reserve a contiguous run for `num_tokens` tokens; returns (start token offset, num_pages)."""
        count = self.pages_needed(num_tokens)
        start = self._find_run(count)
        if start is None:
            raise RuntimeError(f"no free run of {count} pages (free pages: {self.num_free_pages}); "
                               "call can_allocate first")
        length = self._free_len.pop(start)
        self._free_starts.remove(start)
        if length > count:
            bisect.insort(self._free_starts, start + count)
            self._free_len[start + count] = length - count
        return start * self.page_size, count

    def free(self, start_token: int, num_pages: int) -> None:
        """Return a run to the pool, merging it with adjacent free runs."""
        first_page = start_token // self.page_size
        index = bisect.bisect_left(self._free_starts, first_page)
        overlaps_next = index < len(self._free_starts) and self._free_starts[index] < first_page + num_pages
        prev = self._free_starts[index - 1] if index > 0 else None
        if overlaps_next or (prev is not None and prev + self._free_len[prev] > first_page):
            raise RuntimeError(f"pages {first_page}..{first_page + num_pages - 1} are already free")
        start, length = first_page, num_pages
        if index < len(self._free_starts) and self._free_starts[index] == first_page + num_pages:
            after = self._free_starts.pop(index)
            length += self._free_len.pop(after)
        if index > 0:
            before = self._free_starts[index - 1]
            if before + self._free_len[before] == first_page:
                self._free_starts.pop(index - 1)
                start = before
                length += self._free_len.pop(before)
        bisect.insort(self._free_starts, start)
        self._free_len[start] = length


@dataclass
class GatherPlan:
    """Decode rows of one step over the run pool."""

    write_index: torch.Tensor  # (B,) pool position of each row's new token
    gather_index: torch.Tensor  # (B, Lpad) pool positions, clamped to each row's last
    mask: torch.Tensor  # (B, 1, 1, Lpad) True where attended

    @property
    def num_rows(self) -> int:
        return self.write_index.shape[0]


def gather_plan(starts: torch.Tensor, lengths: torch.Tensor, padded_len: int) -> GatherPlan:
    """From device tensors (B,): the host path and the bucketed decode forward build it alike."""
    offsets = torch.arange(padded_len, device=starts.device)
    starts, lengths = starts.unsqueeze(-1), lengths.unsqueeze(-1)
    return GatherPlan(write_index=(starts + lengths - 1).squeeze(-1),
                      gather_index=starts + torch.minimum(offsets, lengths - 1),
                      mask=(offsets < lengths).view(starts.shape[0], 1, 1, padded_len))


class RunCache:
    """Keys and values of every cached token, one pair of flat (N, Hkv, D) pools per layer; a sequence's handle is
    its pool offset. `scratch_tokens` past the pool belong to no sequence (padded rows of bucketed rounds)."""

    def __init__(self, args, pool_tokens: int, dtype: torch.dtype, device: torch.device, scratch_tokens: int = 0):
        shape = (pool_tokens + scratch_tokens, args.num_key_value_heads, args.head_dim)  # (N, Hkv, D)
        # Gathers clamp to written positions, so the pool may start uninitialised.
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.dtype, self.device = dtype, device
        self.scratch_handle = pool_tokens

    def locate(self, kv_start: int) -> int:
        return kv_start

    def write(self, layer: int, kv_start: int, position: int, k: torch.Tensor, v: torch.Tensor) -> None:
        lo = kv_start + position
        self.k[layer][lo:lo + k.shape[0]] = k
        self.v[layer][lo:lo + v.shape[0]] = v

    def context(self, layer: int, kv_start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = kv_start + length
        return self.k[layer][kv_start:end].transpose(0, 1), self.v[layer][kv_start:end].transpose(0, 1)

    def plan_decode(self, spans: list[tuple[int, int]]) -> GatherPlan:
        padded_len = round_up(max(n for _, n in spans), 16)  # any multiple of 16 gives equal rows on CPU
        return gather_plan(torch.tensor([s for s, _ in spans], device=self.device),
                           torch.tensor([n for _, n in spans], device=self.device), padded_len)

    def plan_bucket(self, starts: torch.Tensor, lengths: torch.Tensor, context: int) -> GatherPlan:
        return gather_plan(starts, lengths, context)

    def decode(self, layer: int, plan: GatherPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        q_fold = q.view(rows, num_kv_heads, num_heads // num_kv_heads, head_dim)  # GQA folded into query rows
        cache_k, cache_v = self.k[layer], self.v[layer]
        cache_k.index_copy_(0, plan.write_index, k)
        cache_v.index_copy_(0, plan.write_index, v)
        shape = (rows, plan.gather_index.shape[1], num_kv_heads, head_dim)
        keys = cache_k.index_select(0, plan.gather_index.view(-1)).view(shape).transpose(1, 2)  # (B, Hkv, L, D)
        values = cache_v.index_select(0, plan.gather_index.view(-1)).view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(q_fold, keys, values, attn_mask=plan.mask)
        return out.reshape(rows, num_heads, head_dim)

    def free(self) -> None:
        self.k, self.v = [], []


@dataclass
class LoopPlan:
    spans: list[tuple[int, int]]  # (handle, context length incl. the new token) of each decode row

    @property
    def num_rows(self) -> int:
        return len(self.spans)


class LoopDecode:
    """Any cache, its decode replaced by one exact-length SDPA per sequence over `write` and `context`."""

    def __init__(self, cache):
        self.inner = cache

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def plan_decode(self, spans: list[tuple[int, int]]) -> LoopPlan:
        return LoopPlan(spans)

    def decode(self, layer: int, plan: LoopPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        q_fold = q.view(rows, num_kv_heads, num_heads // num_kv_heads, head_dim)
        out = q.new_empty(rows, num_heads, head_dim)
        for i, (handle, length) in enumerate(plan.spans):
            self.inner.write(layer, handle, length - 1, k[i:i + 1], v[i:i + 1])
            keys, values = self.inner.context(layer, handle, length)
            out[i] = F.scaled_dot_product_attention(q_fold[i], keys, values).view(num_heads, head_dim)
        return out


def page_runs(gather: bool = True):
    """A storage factory: page runs, decode by gather (bucketed when decode_graphs is "on") or by loop."""

    def build(config, model, num_pages, max_seq_len, dtype, device) -> KVStorage:
        placement = PageRuns(num_pages, config.page_size)
        use_graphs = gather and config.decode_graphs == "on"
        cache = RunCache(model.args, placement.pool_tokens, dtype, device, scratch_tokens=int(use_graphs))
        graphs = DecodeGraphs(model, cache, MIN_ROWS, capture=device.type == "cuda") if use_graphs else None
        return KVStorage(placement, cache if gather else LoopDecode(cache), graphs,
                         kv_bytes_per_token(model.args, dtype) * placement.pool_tokens)

    return build


def loop_decode(factory):
    """`factory`'s storage with its decode replaced by the per-sequence loop (no bucketed rounds)."""

    def build(*args) -> KVStorage:
        storage = factory(*args)
        return KVStorage(storage.placement, LoopDecode(storage.cache), None, storage.num_bytes)

    return build
