"""Two "nodes" on one machine: two torchrun launchers (one process each) meeting at a c10d rendezvous.

This is the README's multi-node command with both nodes on 127.0.0.1: FSDP training with a sharded checkpoint
and one inference eval, whose two host files (one per node) and leader summary land in the shared run_dir.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from run_overrides import quick_run_overrides
from launchers import TRAIN, free_port, read_jsonl, worker_env

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]


def test_two_nodes_train_and_eval_into_one_run_dir(task_assets, tmp_path):
    run_dir = tmp_path / "run"
    overrides = quick_run_overrides(task_assets, run_dir, steps=2) + [
        "--trainer.strategy=fsdp", "--trainer.distributed_timeout_sec=60",
        "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2]", "--inference_eval.max_new_tokens=6",
        "--inference_eval.synthetic_prompt_count=4", "--inference_eval.synthetic_prompt_template=reverse: ba {index}"]
    endpoint = f"127.0.0.1:{free_port()}"
    launchers = []
    for node in range(2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                   "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=two-node-test",
                   "--rdzv_conf=join_timeout=60", *TRAIN, *overrides]
        with open(tmp_path / f"node{node}.log", "w") as log:
            launchers.append(subprocess.Popen(command, env=worker_env(), stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [launcher.wait(timeout=240) for launcher in launchers]
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    logs = [(tmp_path / f"node{node}.log").read_text()[-3000:] for node in range(2)]
    assert codes == [0, 0], logs

    step_dir = run_dir / "inference_eval" / "step_000002"
    hosts = [read_jsonl(step_dir / f"host_{i:04d}_of_0002.jsonl") for i in range(2)]
    assert [sorted({r["global_prompt_index"] for r in rows}) for rows in hosts] == [[0, 1], [2, 3]]
    assert all((step_dir / f"host_{i:04d}_of_0002.done").is_file() for i in range(2))
    summary = json.loads((step_dir / "summary.json").read_text())
    assert summary["metrics"]["num_hosts"] == 2 and summary["metrics"]["num_prompts"] == 4
    assert (run_dir / "checkpoints" / "step_000002" / "optimizer").is_dir()
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "train/loss" in line] == [1, 2]
