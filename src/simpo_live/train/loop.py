"""The training loop: read it top to bottom. Setup lives in `session.py`; hooks do everything periodic.

Everything for step N (the update, validation, export, evals) happens before checkpoint N is written, so a
checkpoint means "step N is complete" and a run killed at any moment resumes from one without losing or repeating
a logged row.
"""

from __future__ import annotations

from dataclasses import replace

from simpo_live.data import rank_micro_batches, rank_slice
from simpo_live.errors import NonFiniteError
from simpo_live.train.checkpoint import latest_checkpoint
from simpo_live.train.metrics import StepMetrics
from simpo_live.train.periodic import checkpoint_hook
from simpo_live.train.preemption import Preempted, StopRequest
from simpo_live.train.progress import TrainProgress
from simpo_live.train.session import TrainingSession
from simpo_live.train.step import train_step


def micro_batches_for_step(session: TrainingSession, step: int):
    """This rank's part of global batch `step` (0-based), split into micro-batches (as many on every rank)."""
    pairs = session.pairs.batch(step)  # the offline data, or the latest on-policy round's pairs (onpolicy/)
    world_size = session.rank.world_size
    shares = [rank_slice(pairs, r, world_size) for r in range(world_size)]
    return rank_micro_batches(shares, session.rank.rank, session.batching, session.pad_id)


def run_hooks(session: TrainingSession, num_steps: int) -> None:
    for hook_metrics in session.hooks.run(session, session.step, num_steps):
        if hook_metrics:
            session.tracker.log(hook_metrics, session.step)


def check_update(session: TrainingSession, metrics: StepMetrics) -> StepMetrics:
    """A non-finite update was not applied: stop the run (the default) or count it as skipped."""
    if not metrics.update_skipped:
        return metrics
    if session.cfg.trainer.on_non_finite == "error":
        session.tracker.log(metrics.as_log(), session.step)  # the offending row stays in metrics.jsonl
        last = latest_checkpoint(session.run_dir)
        raise NonFiniteError(
            f"step {session.step}: loss {metrics.loss} / grad norm {metrics.grad_norm} is not "
            f"finite; the update was not applied and the run stops. The last good checkpoint is "
            f"{last or 'none (no checkpoint yet)'}. Lower optimizer.learning_rate or beta, or set "
            "trainer.on_non_finite=skip to drop such updates")
    session.skipped_updates += 1
    if session.progress is not None:
        session.progress.write(f"warning: step {session.step}: non-finite loss or grad norm, update skipped "
                               f"({session.skipped_updates} so far)")
    return replace(metrics, skipped_updates=session.skipped_updates)


def stop_if_asked(session: TrainingSession, stop: StopRequest) -> None:
    """After SIGTERM on any rank: every rank checkpoints this step (unless just done) and the run stops."""
    if not stop.agreed(session.rank, session.cfg.trainer.distributed_timeout_sec):
        return
    if session.step > 0 and session.last_checkpoint_step != session.step:
        checkpoint_hook(session)
    raise Preempted(session.step)


def train_loop(session: TrainingSession, stop: StopRequest) -> None:
    num_steps = session.cfg.trainer.num_train_steps
    progress = TrainProgress(num_steps, session.step, enabled=session.rank.is_leader and session.cfg.trainer.progress)
    session.progress = progress
    # Step 0's hooks (the baseline eval) run before the first update. A resumed run does not repeat its step's
    # hooks: they ran before that step's checkpoint was written.
    if session.step == 0:
        run_hooks(session, num_steps)
    stop_if_asked(session, stop)
    for step in range(session.step, num_steps):
        metrics = train_step(session.model, session.optimizer, session.scheduler,
                             micro_batches_for_step(session, step), session.step_settings)
        session.step = step + 1  # "step" = optimizer updates completed
        metrics = check_update(session, metrics)
        if session.step % session.cfg.trainer.log_every == 0 or session.step == num_steps:
            session.tracker.log(metrics.as_log(), session.step)
        progress.update(session.step, metrics)
        run_hooks(session, num_steps)
        stop_if_asked(session, stop)
    progress.close()
