"""A user error under torchrun is one clean line, printed by the leader only; every rank exits with its code.

Two errors: a config error (every rank refuses its arguments before any process group exists) and one found after
the ranks have met (a micro-batch that does not divide the per-rank batch). Under real torchrun the combined stderr
holds the line once; with ranks started by hand (no agent killing the survivors) each rank's own stderr and exit
code are checked.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from launchers import TRAIN, free_port, start_ranks_by_hand, worker_env
from run_overrides import quick_run_overrides

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

CONFIG_ERROR = (["--trainer.num_train_steps=10", "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[5,50]",
                 "--inference_eval.max_new_tokens=4"], 2,
                "inference_eval.eval_at_steps: step 50 is past trainer.num_train_steps (10)")
RUN_ERROR = (["--trainer.micro_batch_size=3"], 1, "trainer.micro_batch_size (3) must divide the per-rank batch (4")


def error_case(name: str, task_assets, run_dir) -> tuple[list[str], int, str]:
    extra, code, line = {"config": CONFIG_ERROR, "after_rendezvous": RUN_ERROR}[name]
    return quick_run_overrides(task_assets, run_dir, steps=2) + ["--trainer.distributed_timeout_sec=60", *extra], \
        code, line


@pytest.mark.parametrize("name", ["config", "after_rendezvous"])
def test_torchrun_prints_a_user_error_once(task_assets, tmp_path, name):
    overrides, _, line = error_case(name, task_assets, tmp_path / "run")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    result = subprocess.run([*launcher, *TRAIN, *overrides], env=worker_env(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode != 0
    assert result.stderr.count(line) == 1, result.stderr[-4000:]
    assert result.stderr.count("config error:") == 1, result.stderr[-4000:]  # both are config errors
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["config", "after_rendezvous"])
def test_only_the_leader_prints_and_every_rank_exits_with_its_code(task_assets, tmp_path, name):
    overrides, code, line = error_case(name, task_assets, tmp_path / "run")
    procs = start_ranks_by_hand(overrides, 2, tmp_path)
    codes = [proc.wait(timeout=240) for proc in procs]
    errs = [(tmp_path / f"rank{rank}.err").read_text() for rank in range(2)]
    assert codes == [code, code], errs
    assert errs[0].count(line) == 1, errs[0][-3000:]
    assert line not in errs[1] and "Traceback" not in errs[0] + errs[1], errs[1][-3000:]
