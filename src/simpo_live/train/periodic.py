"""The trainer's own scheduled hooks: validation metrics, checkpoints, Hugging Face export."""

from __future__ import annotations

from simpo_live.atomic import atomic_directory
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.model.checkpoint import save_model
from simpo_live.train.checkpoint import TrainerState, capture_rng_state, save_checkpoint
from simpo_live.train.session import TrainingSession
from simpo_live.train.step import validate


def validation_hook(session: TrainingSession) -> dict[str, float] | None:
    pairs = session.data.validation
    if not pairs:
        return None
    start, end = shard_bounds(len(pairs), session.rank.rank, session.rank.world_size)
    return validate(session.model, pairs[start:end], session.micro_batch_size, session.pad_id,
                    session.step_settings)


def checkpoint_hook(session: TrainingSession) -> None:
    if not session.rank.is_leader:
        return
    state = TrainerState(step=session.step, optimizer=session.optimizer.state_dict(),
                         scheduler=session.scheduler.state_dict(), rng=capture_rng_state())
    path = save_checkpoint(session.run_dir, session.raw_model, state, session.tokenizer,
                           keep=session.cfg.trainer.keep_last_checkpoints)
    if session.progress is not None:
        session.progress.write(f"checkpoint: {path}")


def hf_export_hook(session: TrainingSession) -> None:
    if not session.rank.is_leader:
        return
    from pathlib import Path

    target = Path(session.cfg.hf_save_path) / f"step-{session.step}"
    with atomic_directory(target) as tmp:
        save_model(session.raw_model, tmp)
        session.tokenizer.save_pretrained(tmp)


def register_trainer_hooks(session: TrainingSession) -> None:
    cfg = session.cfg
    session.hooks.add("validation", validation_hook, every=cfg.trainer.eval_every, at_steps=[0], at_end=True)
    if cfg.hf_save_path and cfg.hf_save_steps:
        session.hooks.add("hf_export", hf_export_hook, every=cfg.hf_save_steps, at_end=True)
    session.hooks.add("checkpoint", checkpoint_hook, every=cfg.trainer.checkpoint_every, at_end=True)
