"""A rank that dies or hangs during an eval makes the survivor fail fast with an error naming it, never hang.

The two ranks are started by hand (RANK, WORLD_SIZE, MASTER_ADDR/PORT set as torchrun would), because torchrun's
agent kills every worker as soon as one exits, which would hide the survivor's own error. Rank 1 is sabotaged
through the eval scorer (`tests_scorers`), after training and its share of generation are done.
"""

from __future__ import annotations

import time

import pytest

from run_overrides import quick_run_overrides
from launchers import start_ranks_by_hand

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

EVAL = ["--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2]", "--inference_eval.max_new_tokens=6",
        "--inference_eval.synthetic_prompt_count=4", "--inference_eval.synthetic_prompt_template=reverse: ba {index}"]


def wait_for_exits(procs, limit_sec: float) -> list[float]:
    """Each process's exit time (monotonic seconds); kills them all and fails if any outlives limit_sec."""
    exited = [None] * len(procs)
    deadline = time.monotonic() + limit_sec
    while None in exited and time.monotonic() < deadline:
        for i, proc in enumerate(procs):
            if exited[i] is None and proc.poll() is not None:
                exited[i] = time.monotonic()
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert None not in exited, f"ranks still running after {limit_sec}s: {[i for i, t in enumerate(exited) if t is None]}"
    return exited


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_rank_killed_during_an_eval_is_named_by_the_survivor(task_assets, tmp_path, strategy):
    timeout_sec = 20
    overrides = quick_run_overrides(task_assets, tmp_path / "run", steps=2) + EVAL + [
        "--inference_eval.scorer=tests_scorers:die_on_rank_1", f"--trainer.strategy={strategy}",
        f"--trainer.distributed_timeout_sec={timeout_sec}"]
    procs = start_ranks_by_hand(overrides, 2, tmp_path)

    rank0_exit, rank1_exit = wait_for_exits(procs, limit_sec=180)

    err = (tmp_path / "rank0.err").read_text()
    assert procs[1].returncode == 1, (tmp_path / "rank1.err").read_text()[-3000:]
    assert procs[0].returncode != 0
    assert f"inference eval at step 2: rank 1 did not arrive within {timeout_sec}s" in err, err[-3000:]
    assert rank0_exit - rank1_exit < timeout_sec + 15  # noticed within the timeout (plus process teardown)
    assert not (tmp_path / "run" / "inference_eval" / "step_000002" / "summary.json").exists()


def test_a_rank_stuck_in_an_eval_is_named_after_the_eval_timeout(task_assets, tmp_path):
    overrides = quick_run_overrides(task_assets, tmp_path / "run", steps=2) + EVAL + [
        "--inference_eval.scorer=tests_scorers:stall_on_rank_1", "--inference_eval.timeout_sec=5",
        "--trainer.distributed_timeout_sec=60"]
    procs = start_ranks_by_hand(overrides, 2, tmp_path, SIMPO_TEST_STALL_SEC="600")
    try:
        procs[0].wait(timeout=120)  # rank 1 sleeps for 10 minutes per row: rank 0 must give up on its own
    finally:
        procs[1].kill()
        procs[1].wait()
        if procs[0].poll() is None:
            procs[0].kill()
    err = (tmp_path / "rank0.err").read_text()
    assert procs[0].returncode != 0
    assert "inference eval at step 2: rank 1 did not arrive within 5s" in err, err[-3000:]
