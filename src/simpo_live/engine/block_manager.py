"""Page-granular accounting of the KV cache, and where each sequence's keys and values live. No tensors here.

`PageSlots`: `num_slots` fixed extents of `slot_pages` pages (slot i starts at token i * slot_tokens of the pool)
within a budget of `num_pages` pages. Every sequence reserves the pages of its *whole* prompt + max_new_tokens at
admission, so nothing is ever preempted, and its context is one extent that attention reads in place, never
gathered (both KV layouts of kv_cache.py use it). The number of slots, not pages, is then what limits concurrency.
A sequence's start is a token offset into the pool.
"""

from __future__ import annotations

import bisect
from typing import Protocol

from simpo_live.intmath import ceil_div


class Placement(Protocol):
    """What the scheduler and the engine ask of a placement (PageSlots; the tests add page runs)."""

    num_pages: int
    pool_tokens: int

    def pages_needed(self, num_tokens: int) -> int: ...

    def can_allocate(self, num_tokens: int) -> bool: ...

    def allocate(self, num_tokens: int) -> tuple[int, int]:
        """Reserve room for `num_tokens`; returns (start token offset in the pool, pages reserved)."""

    def free(self, start_token: int, num_pages: int) -> None: ...


class PageSlots:
    """`num_pages` pages of budget spread over `num_slots` fixed extents of `slot_pages` pages each."""

    def __init__(self, num_pages: int, page_size: int, num_slots: int, slot_pages: int):
        self.num_pages = num_pages
        self.page_size = page_size
        self.num_slots = num_slots
        self.slot_tokens = slot_pages * page_size
        self.pool_tokens = num_slots * self.slot_tokens
        self._reserved_pages = 0
        self._free_slots = list(range(num_slots))  # kept sorted: lowest slot first keeps the used range compact

    @property
    def num_free_pages(self) -> int:
        return self.num_pages - self._reserved_pages

    def pages_needed(self, num_tokens: int) -> int:
        return ceil_div(num_tokens, self.page_size)

    def can_allocate(self, num_tokens: int) -> bool:
        return (bool(self._free_slots) and num_tokens <= self.slot_tokens
                and self.pages_needed(num_tokens) <= self.num_free_pages)

    def allocate(self, num_tokens: int) -> tuple[int, int]:
        if not self.can_allocate(num_tokens):
            raise RuntimeError(f"cannot place {num_tokens} tokens (free pages: {self.num_free_pages}, free slots: "
                               f"{len(self._free_slots)}); call can_allocate first")
        count = self.pages_needed(num_tokens)
        self._reserved_pages += count
        return self._free_slots.pop(0) * self.slot_tokens, count

    def free(self, start_token: int, num_pages: int) -> None:
        slot = start_token // self.slot_tokens
        if slot in self._free_slots:
            raise RuntimeError(f"slot {slot} is already free")
        self._reserved_pages -= num_pages
        bisect.insort(self._free_slots, slot)
