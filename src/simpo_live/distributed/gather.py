"""Gather small Python objects to the leader over a gloo group, with a timeout that names the missing rank.

Every gather starts with a check-in: each rank sends a token to the leader, the leader waits for all of them
(within one timeout) and answers every live rank with the list of ranks that never arrived. A dead or stuck
rank thus becomes an error naming it on every survivor, instead of a hang inside `gather_object`.
(`dist.monitored_barrier` does the same, except that when a peer has already died it raises gloo's bare
"Connection closed by peer", which names no rank.)
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import torch
import torch.distributed as dist

from simpo_live.distributed.env import RankInfo, cpu_group


class RankTimeoutError(RuntimeError):
    """A collective did not complete in time; the message names the rank(s) waited for."""


def _names(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def _leader_check_in(group, world_size: int, timeout: datetime.timedelta) -> list[int]:
    """On the leader: which ranks did not check in within `timeout`. Tells every live rank the answer."""
    deadline = time.monotonic() + timeout.total_seconds()
    missing, pending = [], {}
    for src in range(1, world_size):
        try:  # posting the receive already fails when the peer's connection is gone
            pending[src] = dist.irecv(torch.zeros(1), src=src, group=group)
        except RuntimeError:
            missing.append(src)
    for src, work in pending.items():
        # One deadline for all, so k stuck ranks cost one timeout, not k. (A zero timeout would mean "the default".)
        remaining = datetime.timedelta(seconds=max(deadline - time.monotonic(), 0.001))
        try:
            work.wait(remaining)
        except RuntimeError:
            missing.append(src)
    missing.sort()
    verdict = torch.zeros(world_size)  # (world_size,): 1 where a rank is missing
    verdict[missing] = 1.0
    for dst in range(1, world_size):
        if dst not in missing:
            dist.isend(verdict, dst=dst, group=group).wait(timeout)
    return missing


def wait_for_all_ranks(rank: RankInfo, timeout_sec: float, what: str) -> None:
    """Block until every rank arrives; raise RankTimeoutError naming who did not within timeout_sec."""
    if not rank.is_distributed:
        return
    group = cpu_group(timeout_sec)
    timeout = datetime.timedelta(seconds=timeout_sec)
    if rank.is_leader:
        missing = _leader_check_in(group, rank.world_size, timeout)
    else:
        verdict = torch.zeros(rank.world_size)
        try:
            dist.isend(torch.ones(1), dst=0, group=group).wait(timeout)
            # The leader answers once every rank checked in or timed out: up to timeout_sec after it arrived.
            dist.irecv(verdict, src=0, group=group).wait(timeout)
        except RuntimeError as e:
            raise RankTimeoutError(
                f"{what}: rank {rank.rank} waited {timeout_sec:.0f}s for the leader (rank 0), which did not "
                f"answer (dead or stuck; see its log). Underlying error: {str(e).splitlines()[0]}") from e
        missing = [i for i, flag in enumerate(verdict.tolist()) if flag]
    if missing:
        raise RankTimeoutError(
            f"{what}: {_names(missing)} did not arrive within {timeout_sec:.0f}s (dead or stuck; see its log); "
            f"rank {rank.rank} stops here")


def gather_to_leader(obj: Any, rank: RankInfo, timeout_sec: float, what: str) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on the leader; None elsewhere."""
    if not rank.is_distributed:
        return [obj]
    wait_for_all_ranks(rank, timeout_sec, what)
    gathered: list[Any] | None = [None] * rank.world_size if rank.is_leader else None
    dist.gather_object(obj, gathered, dst=0, group=cpu_group(timeout_sec))
    return gathered


def gather_to_all(obj: Any, rank: RankInfo, timeout_sec: float, what: str) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (after the same named check-in as a gather)."""
    if not rank.is_distributed:
        return [obj]
    wait_for_all_ranks(rank, timeout_sec, what)
    gathered: list[Any] = [None] * rank.world_size
    dist.all_gather_object(gathered, obj, group=cpu_group(timeout_sec))
    return gathered


def broadcast_from_leader(obj: Any, rank: RankInfo, timeout_sec: float) -> Any:
    """The leader's `obj` on every rank (after a gather, so every rank is known to be alive)."""
    if not rank.is_distributed:
        return obj
    box = [obj if rank.is_leader else None]
    dist.broadcast_object_list(box, src=0, group=cpu_group(timeout_sec))
    return box[0]
