"""Training checkpoints: `checkpoints/step_NNNNNN/` holds an HF-layout model plus `trainer_state.pt`; a LoRA run's
holds its adapters instead (peft's adapter_model.safetensors + adapter_config.json): the base stays model.path.

Written to `step_NNNNNN.tmp/` and renamed by the leader (`atomic_directory`), so the latest-checkpoint search (which ignores
`*.tmp`) never sees a half-written one. Under FSDP the optimizer state is saved sharded with
`torch.distributed.checkpoint` into `optimizer/` (resume at the same world size); the model is always
gathered to a full HF checkpoint, so every full fine-tuning checkpoint is also a loadable model directory (a LoRA
one loads with peft onto its base, or becomes one with `simpo-live export RUN_DIR --merged OUT`).
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from simpo_live.atomic import atomic_directory, temporary_path
from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.parallel import full_adapter_weights, full_state_dict, is_sharded
from simpo_live.errors import NonFiniteError
from simpo_live.model import LlamaModel, ModelArgs
from simpo_live.model.adapter_files import (
    ADAPTER_WEIGHTS,
    file_key,
    is_adapter_dir,
    load_adapters,
    save_adapters,
)
from simpo_live.model.checkpoint import CheckpointError, is_stored, read_model_args, save_model, tensor_shapes
from simpo_live.model.lora import Adapters, adapter_config, adapter_shapes, has_adapters, initial_adapters

if TYPE_CHECKING:
    import peft

STATE_FILE = "trainer_state.pt"
SHARDED_OPTIMIZER_DIR = "optimizer"
CHECKPOINT_NAME = re.compile(r"^step_(\d{6,})$")
# ModelArgs fields that decide tensor shapes: a checkpoint differing in one was saved from another model.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "tie_word_embeddings", "attention_bias")


@dataclass
class TrainerState:
    """Everything besides the weights a resumed run needs. The data position is the step itself."""

    step: int
    optimizer: dict[str, Any] | None  # None when saved sharded under optimizer/
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    skipped_updates: int = 0  # non-finite updates dropped so far (trainer.on_non_finite=skip)


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
                    step: int, tokenizer, keep: int, rank: RankInfo, skipped_updates: int = 0) -> Path:
    """Collective under FSDP (every rank calls it); under DDP or one process only the leader writes."""
    target = checkpoint_dir(run_dir, step)
    sharded = is_sharded(model)
    if not sharded and not rank.is_leader:
        _barrier(rank)  # the leader's closing barrier: nobody moves on before the checkpoint is committed
        return target
    # The leader owns the temporary directory (made, renamed, or removed on error); under FSDP the other ranks
    # write their optimizer shards into it.
    building = atomic_directory(target) if rank.is_leader else contextlib.nullcontext(temporary_path(target))
    with building as tmp:
        lora = has_adapters(raw_model)  # then only the adapters train, and only they are saved
        weights = full_adapter_weights(model) if lora else full_state_dict(model, leader_only=True)
        if rank.is_leader and (bad := first_non_finite(weights)) is not None:
            raise NonFiniteError(f"step {step}: weight {bad} is not finite; checkpoint not written (the previous "
                                 f"ones in {Path(run_dir) / 'checkpoints'} are kept)")
        if sharded:
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

            _barrier(rank)
            dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)},
                     checkpoint_id=str(tmp / SHARDED_OPTIMIZER_DIR))
            _barrier(rank)
        if rank.is_leader:
            if lora:
                save_adapters(tmp, weights, adapter_config(raw_model))
            else:
                save_model(raw_model, tmp, state_dict=weights)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            state = TrainerState(step=step, optimizer=None if sharded else optimizer.state_dict(),
                                 scheduler=scheduler.state_dict(), rng=capture_rng_state(),
                                 skipped_updates=skipped_updates)
            torch.save(state.__dict__, tmp / STATE_FILE)
    if rank.is_leader:
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
    """Keep the newest `keep` complete checkpoints; remove everything older, including the half-deleted or
    half-written leftovers of a crash (which the latest-checkpoint search never lists)."""
    kept = list_checkpoints(run_dir)[-keep:]
    if not kept:
        return
    oldest_kept = kept[0][0]
    for path in (Path(run_dir) / "checkpoints").iterdir():
        match = CHECKPOINT_NAME.match(path.name.removesuffix(".tmp"))
        if match and int(match.group(1)) < oldest_kept:
            shutil.rmtree(path, ignore_errors=True)


class CheckpointShapeError(CheckpointError):
    """A checkpoint whose tensors do not fit this model: it belongs to another model, not a damaged file."""


@dataclass
class ResumePoint:
    path: Path
    state: TrainerState
    skipped: list[tuple[Path, str]]
    """Newer checkpoints that could not be read, with the reason: the run resumes from an older one."""


def read_checkpoint(path: Path, args: ModelArgs, lora: peft.LoraConfig | None = None) -> TrainerState:
    """The trainer state of checkpoint `path`, its weights (with `lora`: its adapters) checked against a model of
    `args` from their headers (they are loaded later, like model.path, sharded where FSDP shards). A damaged file
    is a CheckpointError; tensors of another shape, or adapters where full weights were expected or the reverse,
    are a CheckpointShapeError."""
    try:
        raw = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
        state = TrainerState(**raw)
    except Exception as e:  # torch.load raises many types for a truncated or foreign file
        raise CheckpointError(f"{path / STATE_FILE}: cannot be read ({type(e).__name__}: {e})") from e
    expected = int(CHECKPOINT_NAME.match(path.name).group(1))
    if state.step != expected:
        raise CheckpointError(f"{path / STATE_FILE}: holds step {state.step}, the directory name says {expected}")
    if lora is not None or is_adapter_dir(path):
        check_adapter_checkpoint(path, args, lora)
        return state
    saved_args = read_model_args(path)
    differing = [f"{k} {getattr(saved_args, k)} (run's model: {getattr(args, k)})" for k in SHAPE_FIELDS
                 if getattr(saved_args, k) != getattr(args, k)]
    if differing:
        raise CheckpointShapeError(f"{path}: the checkpoint belongs to another model ({', '.join(differing)}); "
                                   "use a new trainer.run_dir")
    with torch.device("meta"):  # shapes only: nothing is allocated
        own = {name: tuple(t.shape) for name, t in LlamaModel(args).state_dict().items()}
    check_tensor_shapes(path, {name: shape for name, shape in own.items() if is_stored(args, name)},
                        tensor_shapes(path))
    return state


def check_tensor_shapes(path: Path, own: dict[str, tuple[int, ...]], saved: dict[str, tuple[int, ...]]) -> None:
    for name, shape in own.items():
        if name not in saved:
            raise CheckpointError(f"{path}: tensor {name} is missing")
        if saved[name] != shape:
            raise CheckpointShapeError(
                f"{path}: tensor {name} has shape {saved[name]} but this run's model has {shape}: the checkpoint "
                "belongs to another model; use a new trainer.run_dir")


def check_adapter_checkpoint(path: Path, args: ModelArgs, lora: peft.LoraConfig | None) -> None:
    """A LoRA run resumes from adapters of its shapes; a full fine-tuning run never from adapters, nor the reverse."""
    if lora is None:
        raise CheckpointShapeError(f"{path}: holds LoRA adapters but this run trains every weight (lora.rank is "
                                   "null): use a new trainer.run_dir")
    if not is_adapter_dir(path):
        raise CheckpointShapeError(f"{path}: holds a whole model but this run trains LoRA adapters (lora.rank is "
                                   f"{lora.r}): use a new trainer.run_dir")
    own = {file_key(name): shape for name, shape in adapter_shapes(args, lora).items()}
    check_tensor_shapes(path, own, tensor_shapes(path, ADAPTER_WEIGHTS))


def training_adapters(lora: peft.LoraConfig | None, args: ModelArgs, resume_path: Path | None,
                      seed: int) -> Adapters | None:
    """A LoRA run's adapters: peft's initial ones from the run seed, or those of the checkpoint it resumes."""
    if lora is None:
        return None
    if resume_path is None:
        return Adapters(lora, initial_adapters(args, lora, seed))
    return Adapters(lora, load_adapters(resume_path, list(adapter_shapes(args, lora))))


def find_resume_point(run_dir: str | Path, args: ModelArgs, lora: peft.LoraConfig | None = None
                      ) -> ResumePoint | None:
    """The newest checkpoint that reads cleanly (its weights are loaded afterwards, like model.path).

    A damaged newer checkpoint (a crash while it was pruned, a truncated copy) is skipped and reported; if every
    checkpoint is damaged the run stops rather than silently starting over."""
    skipped: list[tuple[Path, str]] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            state = read_checkpoint(path, args, lora)
        except CheckpointShapeError:
            raise
        except CheckpointError as e:
            skipped.append((path, str(e)))
            continue
        return ResumePoint(path, state, skipped)
    if skipped:
        reasons = "; ".join(reason for _, reason in skipped)
        raise CheckpointError(f"{Path(run_dir) / 'checkpoints'}: no checkpoint can be read ({reasons}); move the "
                              "damaged ones away to start over, or use a new trainer.run_dir")
    return None


def first_non_finite(weights: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding a NaN or infinity, or None."""
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def load_optimizer(path: Path, state: TrainerState, model: torch.nn.Module, optimizer) -> None:
    """Restore the optimizer after wrapping: from trainer_state.pt, or sharded from optimizer/."""
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
        return
    sharded_dir = path / SHARDED_OPTIMIZER_DIR
    if not sharded_dir.is_dir() or not is_sharded(model):
        raise CheckpointError(f"{path}: optimizer state was saved sharded (FSDP); resume it with trainer.strategy=fsdp "
                         "at the same world size")
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    template = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(template, checkpoint_id=str(sharded_dir))
    set_optimizer_state_dict(model, optimizer, template["optimizer"])
