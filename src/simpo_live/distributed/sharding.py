"""Pure arithmetic of who does what: contiguous shard bounds for ranks."""

from __future__ import annotations


def shard_bounds(num_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous slice: start = rank*N//P, end = (rank+1)*N//P."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    return rank * num_items // world_size, (rank + 1) * num_items // world_size
