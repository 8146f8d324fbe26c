"""The rank environment set by `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), and process-group
setup (with timeouts) and teardown."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int = 1
    """Ranks on this node (they share its cores and, on CPU, its memory)."""

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_node_leader(self) -> bool:
        """The first rank of its node. A user error (a bad argument, file or value) is the same on every rank of a
        node, so only this rank prints it (on one node: the leader alone); the others exit with the same code."""
        return self.local_rank == 0


def rank_info() -> RankInfo:
    """This process's place in the job; (0, 1, 0, 1) outside torchrun. The only reader of these variables."""
    return RankInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )


def intra_op_threads(requested: int | None) -> int | None:
    """CPU threads for this process: `requested`; else None (keep torch's choice) when OMP_NUM_THREADS is set,
    which torch already follows; else the usable cores divided among the ranks of this node."""
    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    local_ranks = rank_info().local_world_size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(local_ranks, 1))


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "MASTER_ADDR" in os.environ


def init_process_group(info: RankInfo, device: torch.device, timeout_sec: float, force: bool = False) -> None:
    """Join the default group (NCCL on CUDA, gloo on CPU) with a timeout.

    A no-op for one process unless `force` (FSDP on a single device still needs a group and a mesh)."""
    if dist.is_initialized() or not (info.is_distributed or (force and launched_by_torchrun())):
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_sec))


def close_process_group() -> None:
    """Barrier, then destroy (a no-op without a group): the leader hosts the rendezvous store, so it must not exit
    while others still talk to it (a peer tearing down against a vanished store can abort with SIGABRT)."""
    global _cpu_group
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    except RuntimeError:
        pass  # a failed run: a peer may be gone already; tear down regardless
    dist.destroy_process_group()
    _cpu_group = None


_cpu_group = None


def cpu_group(timeout_sec: float):
    """A gloo group over all ranks for object gathers (works beside NCCL, and its timeout is honoured)."""
    global _cpu_group
    if _cpu_group is None:
        if dist.get_backend() == "gloo":
            _cpu_group = dist.group.WORLD
        else:
            _cpu_group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_sec))
    return _cpu_group
