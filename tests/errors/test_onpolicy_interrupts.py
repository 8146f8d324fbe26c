"""An on-policy run killed with SIGKILL during a round (generating, scoring, writing) or just after it committed (one
of the two, drawn), then while training on the round's pairs, and resumed: the finished run equals an uninterrupted
one bitwise (CPU, fp32): weights, optimizer moments, metrics rows, eval files, the rounds' host files byte for byte.

A kill in or after the round at step 3 resumes from checkpoint 2 and redoes step 3 and its round (reusing a finished
host file, or the committed round.json); the kill during step 5 resumes from checkpoint 4 and reloads round 3's
pairs from its files. The reference and the last resume run in this process (two launches' imports saved); the kill
delays come from a seeded RNG (SIMPO_KILL_SEED, else a fresh seed, shown on failure).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from killing import Attempt, KillPoint, assert_same_run, stable, train_command

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.training_run import run_training

pytestmark = [pytest.mark.timeout(600)]
STEPS = 6
ONPOLICY = ["--onpolicy.enabled=true", "--onpolicy.at_steps=[0,3]", "--onpolicy.prompts_per_round=8",
            "--onpolicy.samples_per_prompt=4", "--onpolicy.max_new_tokens=8", "--onpolicy.scorer=tests_scorers:word_count"]
EVAL = ["--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[6]", "--inference_eval.max_new_tokens=4",
        "--inference_eval.synthetic_prompt_count=2", "--inference_eval.synthetic_prompt_template=reverse: ba {index}"]


def overrides(task_assets, run_dir) -> list[str]:
    return quick_run_overrides(task_assets, run_dir, steps=STEPS) + ONPOLICY + EVAL + ["--trainer.progress=true"]


def assert_same_rounds(expected, actual) -> None:
    want = sorted(p.relative_to(expected) for p in (expected / "onpolicy").rglob("host_*.jsonl"))
    assert want == sorted(p.relative_to(actual) for p in (actual / "onpolicy").rglob("host_*.jsonl")) and want
    for name in want:
        assert (expected / name).read_bytes() == (actual / name).read_bytes(), f"{name} differs"
    for summary in (expected / "onpolicy").rglob("round.json"):
        got = json.loads((actual / summary.relative_to(expected)).read_text())["metrics"]
        assert stable(json.loads(summary.read_text())["metrics"]) == stable(got), f"{summary} differs"


def test_killed_during_and_after_a_round_resumes_to_the_same_run(task_assets, tmp_path):
    # SystemRandom: an in-process run before this test seeds the module RNG (random.seed(trainer.seed)).
    seed = int(os.environ.get("SIMPO_KILL_SEED", random.SystemRandom().randrange(2**31)))
    rng = random.Random(seed)
    expected, actual = tmp_path / "uninterrupted", tmp_path / "run"
    # The reference runs in the same directory (then moves), so rows carrying the config digest compare bytewise.
    began = time.monotonic()
    assert run_training(load_config(overrides=overrides(task_assets, actual))) == 0
    actual.rename(expected)
    metrics = [json.loads(line) for line in (expected / "metrics.jsonl").read_text().splitlines()]
    round_sec = next(sum(v for k, v in row.items() if k.startswith("onpolicy/") and k.endswith("_time_sec"))
                     for row in metrics if row["step"] == 3 and "onpolicy/pairs" in row)
    in_round = rng.choice([KillPoint("during round 3", r"step 3/6", rng.uniform(0.0, round_sec)),
                           KillPoint("just after round 3", r"onpolicy round 3:", rng.uniform(0.0, 0.002))])
    plan = [in_round, KillPoint("training on round 3's pairs", r"checkpoint: .*step_000004", rng.uniform(0.0, 0.002))]
    hits = []
    for number, point in enumerate(plan):
        attempt = Attempt(train_command(overrides(task_assets, actual), 1), tmp_path / f"attempt{number}.log")
        assert attempt.wait_for_line(point.after_line) is not None, attempt.text()[-3000:]
        time.sleep(point.delay_sec)
        attempt.signal_all(signal.SIGKILL)
        attempt.finish()
        round_3 = actual / "onpolicy" / "round_000003"
        state = "committed" if (round_3 / "round.json").is_file() else \
            "host file done" if (round_3 / "host_0000_of_0001.done").is_file() else "no host file"
        hits.append(f"{point.phase} +{point.delay_sec:.3f}s (round 3: {state})")
    assert (actual / "checkpoints" / "step_000004").is_dir() and not (actual / "checkpoints" / "step_000006").exists()
    assert run_training(load_config(overrides=overrides(task_assets, actual))) == 0
    print(f"\nkill seed {seed}: " + "; ".join(hits) + f" ({time.monotonic() - began:.1f}s)")
    assert_same_run(expected, actual, STEPS)
    assert_same_rounds(expected, actual)
