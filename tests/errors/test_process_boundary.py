"""The corpus runs its cases inside one driver process; these run a few as real `python -m simpo_live` processes,
so the exit code and the absence of a traceback are checked across the process boundary too."""

import os
import subprocess
import sys

from corpus import QUICK, SRC, jsonl


def simpo_live(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "simpo_live", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_user_error_in_training_is_one_message_and_exit_1(error_env):
    prompts = error_env.tmp / "boundary_prompts.jsonl"
    prompts.write_text(jsonl([{"prompt": "ba"}, {"text": "be"}]))
    run = error_env.tmp / "boundary_run"
    args = [a.format(model=error_env.model, data=error_env.data, run=run) for a in QUICK]
    result = simpo_live("train", *args, "--inference_eval.enabled=true", f"--inference_eval.prompts_path={prompts}",
                        cwd=error_env.tmp)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == f'error: {prompts}:2: missing field "prompt" (has \'text\')'
    assert not run.exists()


def test_a_config_error_exits_2_and_a_report_of_no_run_exits_1(error_env):
    result = simpo_live("config", "--beta=inf", cwd=error_env.tmp)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--beta=inf: beta: Input should be a finite number" in result.stderr
    (error_env.tmp / "empty_dir").mkdir()
    result = simpo_live("report", str(error_env.tmp / "empty_dir"), cwd=error_env.tmp)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not a simpo-live run directory" in result.stderr and not (error_env.tmp / "empty_dir" / "report.html").exists()
