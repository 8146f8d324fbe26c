"""The GPU suite's CPU dry run (benchmarks/gpu_suite.py --device cpu --size tiny): every check runs to its JSON
line, so the script a GPU session runs once is known to work before the device time is spent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


@pytest.mark.slow
def test_every_check_of_the_gpu_suite_prints_its_line_on_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(SUITE), "--out", str(tmp_path), "--device", "cpu", "--size", "tiny"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    by_check = {line["check"]: line for line in lines}
    assert list(by_check) == ["device", "kernel", "default", "onpolicy_bf16", "train_1b", "decode", "engine_vs_hf",
                              "parity"]
    failed = {name: line["error"] for name, line in by_check.items() if "error" in line}
    assert not failed, failed
    assert sorted(by_check["default"]["eval_sec_by_step"]) == ["0", "2", "4"]
    assert by_check["onpolicy_bf16"]["train_steps"] == 4
    assert by_check["train_1b"]["steps"] == 2 and by_check["train_1b"]["total_tokens"] == 64
    assert by_check["parity"]["graphs_vs_eager"]["rows_all_equal"] == 32  # fp32 on CPU: bitwise the same tokens
    assert by_check["parity"]["engine_vs_hf_greedy"]["rows_all_equal"] == 8
    assert set(by_check["engine_vs_hf"]) >= {"W2", "W3"}
