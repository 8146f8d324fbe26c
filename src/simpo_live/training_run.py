"""`simpo-live train`: check the run directory, build the session, register hooks, run the loop, write the report,
say where the outputs went. User errors become one message and exit code 1; SIGTERM and Ctrl-C say how to resume.

The composition root: the one place that joins training (`train/`) with the inference eval (`evals/`), the
on-policy rounds (`onpolicy/`) and the report (`report/`); `train/` imports none of them."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from simpo_live.config import SimpoConfig
from simpo_live.distributed.env import close_process_group, rank_info
from simpo_live.distributed.stop import start_orphan_watchdog
from simpo_live.errors import UserError
from simpo_live.evals.register import register_inference_eval
from simpo_live.onpolicy.register import register_onpolicy_rounds
from simpo_live.report.html import write_report
from simpo_live.run_dir import check_writable_dir
from simpo_live.train.loop import train_loop
from simpo_live.train.ownership import check_run_dir_owner, is_finished
from simpo_live.train.periodic import register_checkpoint_hook, register_trainer_hooks
from simpo_live.train.preemption import (
    INTERRUPTED_EXIT_CODE,
    PREEMPTED_EXIT_CODE,
    Preempted,
    handle_sigterm,
    stop_message,
)
from simpo_live.train.session import build_session, open_run_dir


def check_outputs(cfg: SimpoConfig) -> None:
    """Every directory the run will write can be written, before any work starts."""
    check_writable_dir(cfg.trainer.run_dir, "trainer.run_dir")
    if cfg.inference_eval.enabled and cfg.inference_eval.output_dir:
        check_writable_dir(cfg.inference_eval.output_dir, "inference_eval.output_dir")
    if cfg.hf_save_path:
        check_writable_dir(cfg.hf_save_path, "hf_save_path")


def run_training(cfg: SimpoConfig, verbose: bool = False) -> int:
    """Train to cfg.trainer.num_train_steps; returns the process exit code. `verbose`: print the whole memory
    plan (else one line, unless it does not fit)."""
    rank = rank_info()
    run_dir = Path(cfg.trainer.run_dir)
    step, session = 0, None
    start_orphan_watchdog(rank)
    try:
        check_outputs(cfg)
        changes = check_run_dir_owner(cfg)
        with handle_sigterm(cfg.trainer.preemption_grace_sec) as stop:
            session = build_session(cfg, verbose)  # reads and checks every input; writes nothing
            if is_finished(session):
                if rank.is_leader:
                    print(f"{run_dir}: this run already finished (step {session.step} of "
                          f"{cfg.trainer.num_train_steps}); nothing to do. To train longer, raise "
                          "trainer.num_train_steps with trainer.allow_config_change=true, or use a new "
                          "trainer.run_dir", file=sys.stderr)
                return 0
            register_trainer_hooks(session)
            register_inference_eval(session)  # reads prompts, imports the scorer, checks the eval fits
            register_onpolicy_rounds(session)  # after the eval of a step, before its checkpoint
            register_checkpoint_hook(session)
            open_run_dir(session, changes)
            if rank.is_leader and session.resumed_from is not None:
                print(f"resuming from {session.resumed_from} (step {session.step})", file=sys.stderr)
            step = session.step
            try:
                train_loop(session, stop)
            finally:
                step = session.step
                session.tracker.close()
        if rank.is_leader:
            write_report(run_dir)
    except UserError as e:
        if rank.is_node_leader:  # every rank of a node hit the same bad input: one line, not one per rank
            print(e.describe(), file=sys.stderr)
        return 1
    except Preempted as e:
        if rank.is_leader:
            print(stop_message("stopped by SIGTERM", run_dir, e.step), file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    except KeyboardInterrupt:
        if rank.is_leader:
            print(f"\n{stop_message('interrupted', run_dir, step)}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    finally:
        # The model's DDP/FSDP wrappers and device mesh hold the process group: free them first, so the group is
        # really destroyed now, not at interpreter exit (where gloo's threads can abort a finished run).
        session = None
        gc.collect()
        close_process_group()
    if rank.is_leader:
        print(f"run directory: {run_dir.resolve()} (config.yaml, metrics.jsonl, checkpoints/, report.html)")
    return 0
