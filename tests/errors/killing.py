"""Helpers of the interrupt tests: launch a real training process (one process or torchrun), follow its log lines as
they appear, interrupt it at a randomised point of a chosen phase, and compare two run directories bitwise.

A kill point is a log line that opens a phase (`step 2/8` is followed by that step's hooks: validation, eval,
checkpoint write; `checkpoint: .../step_000004` by the next update; the final checkpoint by the report) plus a
random delay within the phase's duration as measured in the uninterrupted reference run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
# Values that differ between two identical runs: wall-clock timings and memory readings.
UNSTABLE = ("tokens_per_sec", "time_sec", "tokens_per_second", "memory")


def process_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}", "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(overrides: list[str], nproc: int) -> list[str]:
    train = ["-m", "simpo_live", "train", *overrides]
    if nproc == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", *train]


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (torchrun's workers, their children), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has exited; whoever adopted it may reap it late


def default_sigint() -> None:
    """A suite started in the background (`cmd &`, nohup) inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler: the run must get Ctrl-C as a terminal would deliver it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Attempt:
    """One launch; its merged stdout/stderr lines are collected, with their arrival times, by a thread."""

    def __init__(self, command: list[str], log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen(command, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True, preexec_fn=default_sigint)
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
            self.log.write(line)
            self.log.flush()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 240) -> float | None:
        """Seconds since start at which a line matching `pattern` appeared; None if the process ended first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for when, line in self.lines[seen:]:
                if regex.search(line):
                    return when
            seen = len(self.lines)
            if self.proc.poll() is not None:
                self.reader.join(timeout=5)
                if seen == len(self.lines):
                    return None
                continue
            time.sleep(0.002)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{self.text()[-3000:]}")

    def signal_all(self, sig: int) -> None:
        """SIGKILL: the launcher and every descendant at once; others: the top process only (it forwards)."""
        targets = [self.proc.pid] + (descendants(self.proc.pid) if sig == signal.SIGKILL else [])
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 30
            while not all(is_gone(pid) for pid in targets) and time.monotonic() < deadline:
                time.sleep(0.02)

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        self.log.close()
        return code


@dataclass(frozen=True)
class KillPoint:
    phase: str
    after_line: str
    delay_sec: float
    sig: int = signal.SIGKILL


def line_time(lines: list[tuple[float, str]], pattern: str) -> float:
    regex = re.compile(pattern)
    return next(when for when, line in lines if regex.search(line))


def stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not any(u in k for u in UNSTABLE)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_same_run(expected: Path, actual: Path, final_step: int) -> None:
    """Bitwise-equal final weights and optimizer moments, equal metrics rows (timings aside), byte-equal eval host
    files, equal summaries, and no temporary leftovers."""
    import torch

    final = f"checkpoints/step_{final_step:06d}"
    want, got = load_file(expected / final / "model.safetensors"), load_file(actual / final / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), "final weights differ"
    want_state = torch.load(expected / final / "trainer_state.pt", weights_only=False)
    got_state = torch.load(actual / final / "trainer_state.pt", weights_only=False)
    for index, moments in want_state["optimizer"]["state"].items():
        for name, tensor in moments.items():
            assert torch.equal(tensor, got_state["optimizer"]["state"][index][name]), f"optimizer {index}.{name}"
    assert want_state["scheduler"] == got_state["scheduler"]
    assert [stable(r) for r in read_jsonl(expected / "metrics.jsonl")] == \
           [stable(r) for r in read_jsonl(actual / "metrics.jsonl")], "metrics.jsonl differs"
    want_files = sorted(p.relative_to(expected) for p in (expected / "inference_eval").rglob("host_*.jsonl"))
    got_files = sorted(p.relative_to(actual) for p in (actual / "inference_eval").rglob("host_*.jsonl"))
    assert want_files == got_files and want_files, "eval host files differ in number or name"
    for name in want_files:
        assert (expected / name).read_bytes() == (actual / name).read_bytes(), f"{name} differs"
    for summary in (expected / "inference_eval").rglob("summary.json"):
        want_metrics = json.loads(summary.read_text())["metrics"]
        got_metrics = json.loads((actual / summary.relative_to(expected)).read_text())["metrics"]
        assert stable(want_metrics) == stable(got_metrics), f"{summary.relative_to(expected)} differs"
    assert (actual / "report.html").is_file()
    leftovers = [str(p.relative_to(actual)) for p in actual.rglob("*.tmp")]
    assert not leftovers, f"temporary leftovers: {leftovers}"
