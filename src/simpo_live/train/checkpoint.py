"""Training checkpoints: `checkpoints/step_NNNNNN/` holds an HF-layout model plus `trainer_state.pt`.

Written to `step_NNNNNN.tmp/` and renamed by the leader, so the latest-checkpoint search (which ignores
`*.tmp`) never sees a half-written one. Under FSDP the optimizer state is saved sharded with
`torch.distributed.checkpoint` into `optimizer/` (resume at the same world size); the model is always
gathered to a full HF checkpoint, so every checkpoint is also a loadable model directory.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.parallel import full_state_dict, is_sharded
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import save_model

STATE_FILE = "trainer_state.pt"
SHARDED_OPTIMIZER_DIR = "optimizer"
CHECKPOINT_NAME = re.compile(r"^step_(\d{6,})$")


@dataclass
class TrainerState:
    """Everything besides the weights a resumed run needs. The data position is the step itself."""

    step: int
    optimizer: dict[str, Any] | None  # None when saved sharded under optimizer/
    scheduler: dict[str, Any]
    rng: dict[str, Any]


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _barrier(rank: RankInfo) -> None:
    if rank.is_distributed:
        dist.barrier()


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, raw_model: LlamaModel, optimizer, scheduler,
                    step: int, tokenizer, keep: int, rank: RankInfo) -> Path:
    """Collective under FSDP (every rank calls it); under DDP or one process only the leader writes."""
    target = checkpoint_dir(run_dir, step)
    tmp = target.with_name(target.name + ".tmp")
    sharded = is_sharded(model)
    if not sharded and not rank.is_leader:
        _barrier(rank)  # the leader's closing barrier: nobody moves on before the checkpoint is committed
        return target
    if rank.is_leader:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    weights = full_state_dict(model, leader_only=True)
    if sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        _barrier(rank)
        dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)},
                 checkpoint_id=str(tmp / SHARDED_OPTIMIZER_DIR))
        _barrier(rank)
    if rank.is_leader:
        save_model(raw_model, tmp, state_dict=weights)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        state = TrainerState(step=step, optimizer=None if sharded else optimizer.state_dict(),
                             scheduler=scheduler.state_dict(), rng=capture_rng_state())
        torch.save(state.__dict__, tmp / STATE_FILE)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        prune_checkpoints(run_dir, keep)
    _barrier(rank)
    return target


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary `*.tmp` directories are not checkpoints)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for _, path in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def read_trainer_state(path: Path) -> TrainerState:
    """The trainer state of checkpoint `path`; its weights are an HF model directory, loaded like model.path."""
    return TrainerState(**torch.load(path / STATE_FILE, map_location="cpu", weights_only=False))


def load_optimizer(path: Path, state: TrainerState, model: torch.nn.Module, optimizer) -> None:
    """Restore the optimizer after wrapping: from trainer_state.pt, or sharded from optimizer/."""
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
        return
    sharded_dir = path / SHARDED_OPTIMIZER_DIR
    if not sharded_dir.is_dir() or not is_sharded(model):
        raise ValueError(f"{path}: optimizer state was saved sharded (FSDP); resume it with trainer.strategy=fsdp "
                         "at the same world size")
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    template = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(template, checkpoint_id=str(sharded_dir))
    set_optimizer_state_dict(model, optimizer, template["optimizer"])
