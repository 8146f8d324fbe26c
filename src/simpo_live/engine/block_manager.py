"""Page-granular accounting of the KV cache: which pages are free, and a contiguous run of them per sequence.

The cache is one flat pool of `num_pages * page_size` token slots per layer. A sequence is given a *contiguous*
run of pages for its whole reservation (prompt + max_new_tokens), so its keys and values form one contiguous
view: attention reads them without a gather (the per-slot layout measured fastest on CPU in
research/engine_options.md), while memory is still counted, and bounded, in pages. Runs are first-fit; freed runs
merge with their neighbours. No tensors here.
"""

from __future__ import annotations

import bisect


class BlockManager:
    """Free-list of page runs over `num_pages` pages of `page_size` tokens."""

    def __init__(self, num_pages: int, page_size: int):
        self.num_pages = num_pages
        self.page_size = page_size
        self._free_starts: list[int] = [0]  # sorted starts of free runs
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
        """Reserve a contiguous run for `num_tokens` tokens; returns (first_page, num_pages)."""
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
        return start, count

    def free(self, first_page: int, num_pages: int) -> None:
        """Return a run to the pool, merging it with adjacent free runs."""
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
