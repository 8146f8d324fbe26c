"""Page accounting and placement: contiguous runs (first fit, merging) and fixed slots. No tensors."""

import pytest

from engine_references import PageRuns
from simpo_live.engine.block_manager import PageSlots


def test_runs_round_up_to_pages_and_free_back():
    bm = PageRuns(num_pages=10, page_size=4)
    assert bm.allocate(9) == (0, 3)  # (start token, pages)
    assert bm.allocate(4) == (12, 1)
    assert bm.num_free_pages == 6
    bm.free(0, 3)
    bm.free(12, 1)
    assert bm.num_free_pages == 10
    assert bm.allocate(40) == (0, 10)  # the merged pool is one run again


def test_runs_first_fit_reuses_a_freed_hole():
    bm = PageRuns(num_pages=10, page_size=1)
    a, b, c = bm.allocate(3), bm.allocate(3), bm.allocate(3)
    bm.free(*b)
    assert bm.allocate(2) == (3, 2)
    assert bm.num_free_pages == 2 and not bm.can_allocate(2)  # pages 5 and 9 are free but not adjacent
    assert a == (0, 3) and c == (6, 3)


def test_runs_need_a_contiguous_stretch():
    bm = PageRuns(num_pages=6, page_size=1)
    runs = [bm.allocate(1) for _ in range(6)]
    bm.free(*runs[1])
    bm.free(*runs[4])
    assert bm.num_free_pages == 2 and not bm.can_allocate(2)
    bm.free(*runs[2])
    assert bm.can_allocate(2)
    bm.free(*runs[3])
    assert bm.allocate(4) == (1, 4)


def test_runs_double_free_and_overfull_are_errors():
    bm = PageRuns(num_pages=4, page_size=2)
    run = bm.allocate(3)
    bm.free(*run)
    with pytest.raises(RuntimeError, match="already free"):
        bm.free(*run)
    bm.allocate(8)
    with pytest.raises(RuntimeError, match="no free run"):
        bm.allocate(1)


def test_slots_bound_reservations_by_the_page_budget():
    bm = PageSlots(num_pages=10, page_size=4, num_slots=3, slot_pages=5)
    assert bm.pool_tokens == 60
    assert bm.allocate(17) == (0, 5)  # slot 0
    assert bm.allocate(8) == (20, 2)  # slot 1
    assert not bm.can_allocate(21)  # longer than a slot
    assert not bm.can_allocate(13)  # 4 pages > the 3 left in the budget
    assert bm.allocate(12) == (40, 3)
    assert bm.num_free_pages == 0 and not bm.can_allocate(1)
    bm.free(20, 2)
    assert bm.allocate(4) == (20, 1)  # the lowest free slot is reused


def test_slots_run_out_before_pages():
    bm = PageSlots(num_pages=100, page_size=1, num_slots=2, slot_pages=10)
    bm.allocate(1)
    bm.allocate(1)
    assert bm.num_free_pages == 98 and not bm.can_allocate(1)
    bm.free(0, 1)
    with pytest.raises(RuntimeError, match="already free"):
        bm.free(0, 1)
