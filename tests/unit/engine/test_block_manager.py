"""Page accounting: contiguous runs, first fit, merging on free, errors. No tensors."""

import pytest

from simpo_live.engine.block_manager import BlockManager


def test_allocate_rounds_up_to_pages_and_frees_back():
    bm = BlockManager(num_pages=10, page_size=4)
    assert bm.allocate(9) == (0, 3)
    assert bm.allocate(4) == (3, 1)
    assert bm.num_free_pages == 6
    bm.free(0, 3)
    bm.free(3, 1)
    assert bm.num_free_pages == 10
    assert bm.allocate(40) == (0, 10)  # the merged pool is one run again


def test_first_fit_reuses_freed_hole():
    bm = BlockManager(num_pages=10, page_size=1)
    a, b, c = bm.allocate(3), bm.allocate(3), bm.allocate(3)
    bm.free(*b)
    assert bm.allocate(2) == (3, 2)
    assert bm.num_free_pages == 2 and not bm.can_allocate(2)  # pages 5 and 9 are free but not adjacent
    assert a == (0, 3) and c == (6, 3)


def test_can_allocate_needs_a_contiguous_run():
    bm = BlockManager(num_pages=6, page_size=1)
    runs = [bm.allocate(1) for _ in range(6)]
    bm.free(*runs[1])
    bm.free(*runs[4])
    assert bm.num_free_pages == 2
    assert not bm.can_allocate(2)
    bm.free(*runs[2])
    assert bm.can_allocate(2)
    bm.free(*runs[3])
    assert bm.allocate(4) == (1, 4)


def test_double_free_is_an_error():
    bm = BlockManager(num_pages=4, page_size=2)
    run = bm.allocate(3)
    bm.free(*run)
    with pytest.raises(RuntimeError, match="already free"):
        bm.free(*run)


def test_allocate_without_room_raises():
    bm = BlockManager(num_pages=2, page_size=8)
    bm.allocate(16)
    assert not bm.can_allocate(1)
    with pytest.raises(RuntimeError, match="no free run"):
        bm.allocate(1)
