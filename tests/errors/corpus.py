"""The bad-input corpus helpers: each category module lists `Case`s; one subprocess per module runs them all through the
real CLI (`cli_driver.py`), and one test per case asserts its exit code, that no traceback was printed and that
the message names the source (file:line, key or argument). Nothing here mocks the code under test.

Placeholders in args and names: {tmp} (the module's scratch directory), {model} and {data} (the tiny task model
and its preference file), {run} (a fresh run directory for this case, which a refused run must not create).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@dataclass
class ErrorEnv:
    tmp: Path
    model: Path
    data: Path

    def run_dir(self, case_id: str) -> Path:
        return self.tmp / "runs" / case_id

    def expand(self, text: str, case_id: str) -> str:
        return text.format(tmp=self.tmp, model=self.model, data=self.data, run=self.run_dir(case_id))


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    names: list[str]
    """Substrings the message must contain: the file (and line/row), key or argument, and what is wrong."""
    setup: Callable[[ErrorEnv, Path], None] | None = None
    """Prepare files: called with the env and this case's run directory path ({run})."""
    after: Callable[[ErrorEnv, Path, dict], None] | None = None
    """Extra checks on the scratch directory, the run directory and the result (e.g. nothing was written)."""
    run_must_not_exist: bool = True


@pytest.fixture(scope="module")
def error_env(task_assets, tmp_path_factory) -> ErrorEnv:
    model, data = task_assets
    return ErrorEnv(tmp_path_factory.mktemp("errors"), Path(model), Path(data))


def run_cases(env: ErrorEnv, cases: list[Case], timeout: float = 600) -> dict[str, dict]:
    """Set every case up, run them all in one driver process, return id -> {code, stdout, stderr}."""
    for case in cases:
        if case.setup is not None:
            case.setup(env, env.run_dir(case.id))
    payload = [{"id": c.id, "args": [env.expand(a, c.id) for a in c.args], "cwd": str(env.tmp)} for c in cases]
    cases_file, results_file = env.tmp / "cases.json", env.tmp / "results.json"
    cases_file.write_text(json.dumps(payload))
    pythonpath = os.pathsep.join([str(SRC), str(HERE.parent), str(env.tmp)])
    process_env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        process_env.pop(name, None)
    done = subprocess.run([sys.executable, str(HERE / "cli_driver.py"), str(cases_file), str(results_file)],
                          env=process_env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(results_file.read_text())


def check_case(env: ErrorEnv, case: Case, result: dict) -> None:
    err = result["stderr"]
    shown = f"exit {result['code']}\nstderr:\n{err[-3000:]}\nstdout:\n{result['stdout'][-1000:]}"
    assert "Traceback" not in err and "Traceback" not in result["stdout"], shown
    assert result["code"] == case.code, shown
    for name in case.names:
        assert env.expand(name, case.id) in err, f"{env.expand(name, case.id)!r} not named\n{shown}"
    if case.code != 0:
        assert "error" in err.lower(), shown
    if case.run_must_not_exist:
        assert not env.run_dir(case.id).exists(), f"a refused run wrote its run directory\n{shown}"
    if case.after is not None:
        case.after(env, env.run_dir(case.id), result)


def write(relative: str, content: str | bytes) -> Callable[[ErrorEnv, Path], None]:
    """A setup step writing `content` to tmp/relative."""

    def setup(env: ErrorEnv, run: Path) -> None:
        path = env.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)

    return setup


def jsonl(rows: list) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# A few-second CPU run on the task assets with the demo eval off (tests/run_overrides.py, with placeholders).
QUICK = ["--model.path={model}", "--data.train_path={data}", "--trainer.run_dir={run}", "--trainer.num_train_steps=2",
         "--trainer.train_batch_size=8", "--trainer.micro_batch_size=4", "--trainer.checkpoint_every=2",
         "--trainer.progress=false", "--trainer.num_threads=1", "--inference_eval.enabled=false",
         "--inference_eval.eval_before_training=false", "--inference_eval.scorer=null",
         "--inference_eval.reward_model=null",
         "--inference_eval.heldout_prompt_count=null", "--inference_eval.eval_at_steps=null"]
EVAL_ON = ["--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2]", "--inference_eval.max_new_tokens=4"]


def category_tests(cases: list[Case]):
    """The fixture and the parametrized test of a category module: `results, test_case = category_tests(CASES)`."""
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    by_id = {c.id: c for c in cases}

    @pytest.fixture(scope="module")
    def results(error_env):
        return run_cases(error_env, cases)

    @pytest.mark.parametrize("case_id", ids)
    def test_case(error_env, results, case_id):
        check_case(error_env, by_id[case_id], results[case_id])

    return results, test_case
