"""Start real training processes for the distributed tests: one process, torchrun, or ranks started by hand.

Every launch is a subprocess of `python -m simpo_live train` on gloo/CPU with this checkout's `src/` and `tests/`
on PYTHONPATH (so `inference_eval.scorer: tests_scorers:...` resolves in the workers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
TRAIN = ["-m", "simpo_live", "train"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}", "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # a launcher sets these; stale ones from the caller would mislead a one-process run
    env.update(extra)
    return env


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}"
    return result


def train_one_process(overrides: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return check(subprocess.run([sys.executable, *TRAIN, *overrides], env=worker_env(), capture_output=True,
                                text=True, timeout=timeout))


def train_torchrun(overrides: list[str], nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    return check(subprocess.run([*launcher, *TRAIN, *overrides], env=worker_env(), capture_output=True, text=True,
                                timeout=timeout))


def start_ranks_by_hand(overrides: list[str], world_size: int, log_dir: Path,
                        rank_overrides: dict[int, list[str]] | None = None, **env: str) -> list[subprocess.Popen]:
    """The ranks as plain processes with the env torchrun would set, but no agent that kills the survivors.
    `rank_overrides[r]` is appended to rank r's overrides (later keys win). Logs: log_dir/rank<r>.{out,err}."""
    port = str(free_port())
    procs = []
    for rank in range(world_size):
        rank_env = worker_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                              LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **env)
        with open(log_dir / f"rank{rank}.out", "w") as out, open(log_dir / f"rank{rank}.err", "w") as err:
            own = (rank_overrides or {}).get(rank, [])
            procs.append(subprocess.Popen([sys.executable, *TRAIN, *overrides, *own], env=rank_env, stdout=out,
                                          stderr=err))
    return procs


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
