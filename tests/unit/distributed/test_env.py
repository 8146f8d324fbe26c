"""The rank environment is read in one place, `rank_info()`; everything else (the intra-op thread default, the
plan's share of host memory) asks it."""

import torch

from simpo_live.distributed.env import RankInfo, intra_op_threads, rank_info
from simpo_live.plan.from_config import device_budget_bytes

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def test_rank_info_reads_torchrun_variables_and_defaults_to_one_process(monkeypatch):
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)
    assert rank_info() == RankInfo(rank=0, world_size=1, local_rank=0, local_world_size=1)
    for name, value in zip(TORCHRUN, ("5", "8", "1", "4")):
        monkeypatch.setenv(name, value)
    assert rank_info() == RankInfo(rank=5, world_size=8, local_rank=1, local_world_size=4)


def test_local_world_size_splits_host_cores_and_host_memory(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("simpo_live.plan.from_config.free_memory_bytes", lambda device: 12_000)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert intra_op_threads(None) == 2
    assert device_budget_bytes(torch.device("cpu"), own_bytes=7) == 3_000 + 7
    assert device_budget_bytes(torch.device("cuda"), own_bytes=7) == 12_000 + 7  # a GPU is not shared
