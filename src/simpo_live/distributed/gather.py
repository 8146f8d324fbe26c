"""Gather small Python objects to the leader over a gloo group, with a timeout that names the missing rank.

A `monitored_barrier` first: gloo's barrier that reports which ranks failed to arrive, so a dead or stuck
rank becomes an error naming it instead of a hang inside `gather_object`.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import torch.distributed as dist

from simpo_live.distributed.env import RankInfo, cpu_group


class RankTimeoutError(RuntimeError):
    """A collective did not complete in time; the message names the rank(s) waited for."""


def _missing_ranks(message: str) -> str | None:
    match = re.search(r"[Rr]anks? ([\d, ]+) failed to pass monitoredBarrier", message)
    return match.group(1).strip() if match else None


def wait_for_all_ranks(rank: RankInfo, timeout_sec: float, what: str) -> None:
    """Block until every rank arrives; raise RankTimeoutError naming who did not within timeout_sec."""
    if not rank.is_distributed:
        return
    group = cpu_group(timeout_sec)
    try:
        dist.monitored_barrier(group=group, timeout=datetime.timedelta(seconds=timeout_sec), wait_all_ranks=True)
    except RuntimeError as e:
        missing = _missing_ranks(str(e))
        if rank.is_leader and missing:
            who = f"rank(s) {missing}"
        elif rank.is_leader:
            who = "a rank"
        else:
            who = "the leader (rank 0)"
        raise RankTimeoutError(
            f"{what}: rank {rank.rank} waited {timeout_sec:.0f}s for {who}, which did not arrive "
            f"(dead or stuck; see its log). Underlying error: {str(e).splitlines()[0]}"
        ) from e


def gather_to_leader(obj: Any, rank: RankInfo, timeout_sec: float, what: str) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on the leader; None elsewhere."""
    if not rank.is_distributed:
        return [obj]
    wait_for_all_ranks(rank, timeout_sec, what)
    gathered: list[Any] | None = [None] * rank.world_size if rank.is_leader else None
    dist.gather_object(obj, gathered, dst=0, group=cpu_group(timeout_sec))
    return gathered


def broadcast_from_leader(obj: Any, rank: RankInfo, timeout_sec: float) -> Any:
    """The leader's `obj` on every rank (after a gather, so every rank is known to be alive)."""
    if not rank.is_distributed:
        return obj
    box = [obj if rank.is_leader else None]
    dist.broadcast_object_list(box, src=0, group=cpu_group(timeout_sec))
    return box[0]
