"""Page-granular accounting of the KV cache, and where each sequence's keys and values live. No tensors here.

The cache is one flat pool of token positions per layer. Every sequence reserves the pages of its *whole*
prompt + max_new_tokens at admission and gets one contiguous extent, so attention reads its context as a view,
never a gather (the per-slot layout measured fastest on CPU, research/engine_options.md). Two placements:
- `PageRuns`: first-fit contiguous runs of pages; the pool is exactly the page budget (used on CUDA, where memory
  is committed at allocation). Freed runs merge with their neighbours.
- `PageSlots`: `num_slots` fixed extents of `slot_pages` pages (slot i starts at i * slot_pages) within the page
  budget, so the pool can be viewed as (slots, heads, slot_len, dim) and decoded in one batched call (used on
  CPU). The number of slots, not pages, is then what limits concurrency.
Both return a sequence's start as a token offset into the pool.
"""

from __future__ import annotations

import bisect


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
        return -(-num_tokens // self.page_size)

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
        return -(-num_tokens // self.page_size)

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
