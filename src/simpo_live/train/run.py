"""`simpo-live train`: build the session, register hooks, run the loop, say where the outputs went."""

from __future__ import annotations

import sys

import torch.distributed as dist

from simpo_live.config import ConfigError, SimpoConfig
from simpo_live.data import DataError
from simpo_live.model import UnsupportedModelError
from simpo_live.model.checkpoint import CheckpointError
from simpo_live.train.loop import train_loop
from simpo_live.train.periodic import register_trainer_hooks
from simpo_live.train.session import build_session

USER_ERRORS = (ConfigError, DataError, CheckpointError, UnsupportedModelError, FileNotFoundError)


def run_training(cfg: SimpoConfig) -> int:
    """Train to cfg.trainer.num_train_steps; returns the process exit code."""
    try:
        session = build_session(cfg)
        register_trainer_hooks(session)
        register_eval_hooks(session)
        if session.rank.is_leader and session.resumed_from is not None:
            print(f"resuming from {session.resumed_from} (step {session.step})", file=sys.stderr)
        train_loop(session)
        session.tracker.close()
        if session.rank.is_leader:
            from simpo_live.report.html import write_report

            write_report(session.run_dir)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_available() and dist.is_initialized():
            close_process_group()
    if session.rank.is_leader:
        print(f"run directory: {session.run_dir.resolve()} (config.yaml, metrics.jsonl, checkpoints/, report.html)")
    return 0


def close_process_group() -> None:
    """Barrier, then destroy: the leader hosts the rendezvous store, so it must not exit while others still
    talk to it (a peer tearing down against a vanished store can abort with SIGABRT)."""
    try:
        dist.barrier()
    except RuntimeError:
        pass  # a failed run: a peer may be gone already; tear down regardless
    dist.destroy_process_group()


def register_eval_hooks(session) -> None:
    """The periodic inference eval (config section inference_eval), when enabled."""
    from simpo_live.evals.register import register_inference_eval

    register_inference_eval(session)
