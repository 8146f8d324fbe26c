"""Rank agreement on stopping, and the watchdog that ends a rank whose launcher died.

A stop request (SIGTERM) may reach the ranks at different moments; `any_rank_wants_to_stop` is a collective over
the gloo group at a step boundary, so all ranks stop after the same step. A rank started by torchrun whose
agent is killed is re-parented; `start_orphan_watchdog` notices within a second and exits the process, so an
orphaned leader never writes into a run directory that a rerun is using.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time

import torch
import torch.distributed as dist

from simpo_live.distributed.env import RankInfo, cpu_group, launched_by_torchrun

ORPHAN_EXIT_CODE = 3


def any_rank_wants_to_stop(wants_to_stop: bool, rank: RankInfo, timeout_sec: float) -> bool:
    """True on every rank if it is true on any (a collective: every rank calls it at the same step)."""
    if not (rank.is_distributed and dist.is_initialized()):
        return wants_to_stop
    flag = torch.tensor([1.0 if wants_to_stop else 0.0])
    work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=cpu_group(timeout_sec), async_op=True)
    work.wait(datetime.timedelta(seconds=timeout_sec))
    return bool(flag.item())


def _watch_parent(parent_pid: int, rank: int, interval_sec: float) -> None:
    while True:
        time.sleep(interval_sec)
        if os.getppid() != parent_pid:
            print(f"rank {rank}: the launcher (pid {parent_pid}) is gone; exiting instead of training on as an "
                  "orphan (rerun the launch command to resume from the last checkpoint)", file=sys.stderr, flush=True)
            os._exit(ORPHAN_EXIT_CODE)


def start_orphan_watchdog(rank: RankInfo, interval_sec: float = 0.5) -> bool:
    """Under torchrun, exit this process soon after its launcher dies. Returns whether the watchdog runs."""
    if not launched_by_torchrun():
        return False
    thread = threading.Thread(target=_watch_parent, args=(os.getppid(), rank.rank, interval_sec),
                              name="orphan-watchdog", daemon=True)
    thread.start()
    return True
