"""Wrap the model for the training strategy: none (one process), DDP, or FSDP2."""

from __future__ import annotations

import torch

from simpo_live.distributed.env import RankInfo


def wrap_for_training(model: torch.nn.Module, strategy: str, rank: RankInfo, device: torch.device) -> torch.nn.Module:
    if not rank.is_distributed:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    raise NotImplementedError(f"trainer.strategy {strategy!r} is not implemented yet")
