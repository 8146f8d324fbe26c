"""The trainer's own scheduled hooks: validation metrics, checkpoints, Hugging Face export."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from simpo_live.atomic import atomic_directory
from simpo_live.distributed.parallel import full_state_dict, inference_replica, is_sharded
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.intmath import ceil_div
from simpo_live.model.checkpoint import save_model
from simpo_live.model.lora import has_adapters
from simpo_live.train.checkpoint import save_checkpoint
from simpo_live.train.session import TrainingSession
from simpo_live.train.step import validate


def validation_hook(session: TrainingSession) -> dict[str, float] | None:
    pairs = session.data.validation
    if not pairs:
        return None
    rank, world_size = session.rank.rank, session.rank.world_size
    start, end = shard_bounds(len(pairs), rank, world_size)
    micro_batch_size = session.batching.micro_batch_size
    largest_share = ceil_div(len(pairs), world_size)
    num_batches = ceil_div(largest_share, micro_batch_size)
    # DDP's wrapper would sync buffers in forward; the plain module computes the same thing with no collective.
    model = session.model if is_sharded(session.model) else session.raw_model
    return validate(model, pairs[start:end], micro_batch_size, session.pad_id, session.step_settings,
                    num_batches=num_batches, filler=pairs[0])


def checkpoint_hook(session: TrainingSession) -> None:
    path = save_checkpoint(session.run_dir, session.model, session.raw_model, session.optimizer, session.scheduler,
                           session.step, session.tokenizer, session.cfg.trainer.keep_last_checkpoints, session.rank,
                           session.skipped_updates)
    session.last_checkpoint_step = session.step
    if session.progress is not None:
        session.progress.write(f"checkpoint: {path}")


@contextlib.contextmanager
def exported_weights(session: TrainingSession) -> Iterator[dict]:
    """What an HF export holds: the trained weights, or with LoRA the merged model the eval generates from (a
    collective under FSDP)."""
    if not has_adapters(session.raw_model):
        yield full_state_dict(session.model, leader_only=True)
        return
    with inference_replica(session.raw_model) as merged:
        yield merged.state_dict()


def hf_export_hook(session: TrainingSession) -> None:
    with exported_weights(session) as weights:
        if not session.rank.is_leader:
            return
        target = Path(session.cfg.hf_save_path) / f"step-{session.step}"
        with atomic_directory(target) as tmp:
            save_model(session.raw_model, tmp, state_dict=weights)
            session.tokenizer.save_pretrained(tmp)


def register_trainer_hooks(session: TrainingSession) -> None:
    """Validation and HF export; the checkpoint hook is registered last, after the evals (see loop.py)."""
    cfg = session.cfg
    session.hooks.add("validation", validation_hook, every=cfg.trainer.validate_every, at_steps=[0], at_end=True)
    if cfg.hf_save_path and cfg.hf_save_steps:
        session.hooks.add("hf_export", hf_export_hook, every=cfg.hf_save_steps, at_end=True)


def register_checkpoint_hook(session: TrainingSession) -> None:
    """Checkpoint N is written after every other hook of step N, so it marks the step as complete."""
    session.hooks.add("checkpoint", checkpoint_hook, every=session.cfg.trainer.checkpoint_every, at_end=True)
