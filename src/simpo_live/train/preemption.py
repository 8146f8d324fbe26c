"""SIGTERM (a scheduler about to preempt the job): checkpoint at the next step boundary and exit, within a grace
period. Ctrl-C: say which checkpoint the rerun resumes from and the command that resumes.

The signal handler only records the request; the loop asks `StopRequest.agreed(session)` after each step's
hooks, which every rank answers together, so all ranks save the same step.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from simpo_live.distributed.env import RankInfo, launched_by_torchrun
from simpo_live.distributed.stop import any_rank_wants_to_stop
from simpo_live.train.checkpoint import latest_checkpoint

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: the job did not finish; rerunning the same command resumes it
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT


class Preempted(Exception):
    """Raised by the loop once every rank has checkpointed after a SIGTERM."""

    def __init__(self, step: int):
        self.step = step
        super().__init__(f"stopped at step {step}")


class StopRequest:
    def __init__(self, grace_sec: float):
        self.grace_sec = grace_sec
        self.requested = threading.Event()

    def on_sigterm(self, signum, frame) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        print(f"SIGTERM: checkpointing at the next step boundary (within {self.grace_sec:.0f}s)", file=sys.stderr,
              flush=True)
        timer = threading.Timer(self.grace_sec, self.give_up)
        timer.daemon = True
        timer.start()

    def give_up(self) -> None:
        print(f"SIGTERM: no step boundary within {self.grace_sec:.0f}s (trainer.preemption_grace_sec); exiting "
              "without a new checkpoint", file=sys.stderr, flush=True)
        os._exit(PREEMPTED_EXIT_CODE)

    def agreed(self, rank: RankInfo, timeout_sec: float) -> bool:
        """Whether every rank stops now (a collective at a step boundary)."""
        return any_rank_wants_to_stop(self.requested.is_set(), rank, timeout_sec)


@contextlib.contextmanager
def handle_sigterm(grace_sec: float) -> Iterator[StopRequest]:
    """Install the SIGTERM handler for the duration (main thread only; elsewhere the request never fires)."""
    request = StopRequest(grace_sec)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.signal(signal.SIGTERM, request.on_sigterm)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command() -> str:
    """The command line that resumes this run: the same one (the run directory and its checkpoints decide)."""
    argv = list(sys.argv)
    program = "python -m simpo_live" if argv and argv[0].endswith("__main__.py") else Path(argv[0]).name
    command = f"{program} {shlex.join(argv[1:])}".strip()
    if launched_by_torchrun():
        return f"the same torchrun command (each rank ran: {command})"
    return command


def stop_message(what: str, run_dir: Path, step: int) -> str:
    checkpoint = latest_checkpoint(run_dir)
    where = f"the last checkpoint is {checkpoint}" if checkpoint else "there is no checkpoint yet (a rerun starts over)"
    return f"{what} at step {step}; {where}; resume with: {resume_command()}"
