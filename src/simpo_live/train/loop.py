"""The training loop: read it top to bottom. Setup lives in `session.py`; hooks do everything periodic."""

from __future__ import annotations

from simpo_live.data import collate_pairs, global_batch_indices, rank_slice
from simpo_live.train.progress import TrainProgress
from simpo_live.train.session import TrainingSession
from simpo_live.train.step import train_step


def micro_batches_for_step(session: TrainingSession, step: int):
    """This rank's part of global batch `step` (0-based), split into micro-batches."""
    cfg = session.cfg.trainer
    indices = global_batch_indices(len(session.data.train), cfg.train_batch_size, step, cfg.seed)
    mine = rank_slice(indices, session.rank.rank, session.rank.world_size)
    size = session.micro_batch_size
    return [collate_pairs([session.data.train[i] for i in mine[s: s + size]], session.pad_id)
            for s in range(0, len(mine), size)]


def run_hooks(session: TrainingSession, num_steps: int, resumed: bool = False) -> None:
    for _, hook_metrics in session.hooks.run(session, session.step, num_steps, resumed=resumed):
        if hook_metrics:
            session.tracker.log(hook_metrics, session.step)


def train_loop(session: TrainingSession) -> None:
    num_steps = session.cfg.trainer.num_train_steps
    progress = TrainProgress(num_steps, session.step, enabled=session.rank.is_leader and session.cfg.trainer.progress)
    session.progress = progress
    # Before the first update (step 0: baseline eval), or at the resumed step (idempotent hooks only).
    run_hooks(session, num_steps, resumed=session.step > 0)
    for step in range(session.step, num_steps):
        metrics = train_step(session.model, session.optimizer, session.scheduler,
                             micro_batches_for_step(session, step), session.step_settings)
        session.step = step + 1  # "step" = optimizer updates completed
        session.tracker.log(metrics, session.step)
        progress.update(session.step, metrics)
        run_hooks(session, num_steps)
    progress.close()
