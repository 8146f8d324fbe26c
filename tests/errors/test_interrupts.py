"""Interrupted runs, with real processes: kill -9 at randomised points of every phase (an update, a checkpoint
write, an eval, the report), Ctrl-C and SIGTERM in between, then the same command again, under one process and
under torchrun with 2 ranks; the finished run must equal an uninterrupted one bitwise (CPU, fp32), with every eval
row present once. And a rank whose torchrun agent is killed must exit within seconds instead of training on.

The kill delays come from a seeded RNG (SIMPO_KILL_SEED, else a fresh seed, shown on failure).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time

import pytest
from killing import Attempt, KillPoint, assert_same_run, descendants, is_gone, line_time, train_command

from run_overrides import quick_run_overrides

pytestmark = [pytest.mark.timeout(600)]
STEPS = 8
EVAL = ["--inference_eval.enabled=true", "--inference_eval.eval_before_training=true",
        "--inference_eval.eval_at_steps=[3,6]", "--inference_eval.max_new_tokens=8",
        "--inference_eval.synthetic_prompt_count=4", "--inference_eval.synthetic_prompt_template=reverse: ba {index}",
        "--inference_eval.temperature=0.8", "--inference_eval.n_samples=2"]


def overrides(task_assets, run_dir) -> list[str]:
    return quick_run_overrides(task_assets, run_dir, steps=STEPS) + EVAL + [
        "--trainer.validate_every=3", "--trainer.progress=true"]  # progress lines mark the phases


def phase_durations(lines) -> dict[str, float]:
    """How long each phase lasted in the reference run (seconds), to draw kill delays inside it."""
    at = lambda pattern: line_time(lines, pattern)  # noqa: E731
    return {
        "checkpoint_2": at(r"checkpoint: .*step_000002") - at(r"step 2/8"),
        "eval_3": at(r"eval step 3:") - at(r"step 3/8"),
        "eval_6": at(r"eval step 6:") - at(r"step 6/8"),
        "report": at(r"run directory:") - at(r"checkpoint: .*step_000008"),
    }


def kill_plan(durations: dict[str, float], rng: random.Random, distributed: bool) -> list[KillPoint]:
    uniform = lambda key: rng.uniform(0.0, durations[key])  # noqa: E731
    plan = [
        KillPoint("eval (baseline: host file, gather, summary)", r"eval step 0:", rng.uniform(0.0, 0.05)),
        # The signals go at once: a delay past the next step boundary (updates take milliseconds on a quiet
        # machine) would move the stop beyond the line the next kill point waits for.
        KillPoint("update (Ctrl-C)", r"step 1/8", rng.uniform(0.0, 0.002), signal.SIGINT),
        KillPoint("checkpoint write", r"step 2/8", uniform("checkpoint_2")),
        KillPoint("eval", r"step 3/8", uniform("eval_3")),
        KillPoint("update (SIGTERM)", r"checkpoint: .*step_000004", rng.uniform(0.0, 0.002), signal.SIGTERM),
        KillPoint("eval", r"step 6/8", uniform("eval_6")),
        KillPoint("report", r"checkpoint: .*step_000008", uniform("report")),
    ]
    # Every launch costs a few CPU seconds of imports, so each mode runs a subset that still covers every phase:
    # one eval of the two mid-run ones, drawn at random.
    evals = [plan[3], plan[5]]
    chosen_eval = rng.choice(evals)
    plan = [p for p in plan if p not in evals or p is chosen_eval]
    if chosen_eval is evals[1]:
        # SIGTERM stops at the step boundary after its delay, which a fast update can push to step 6; the eval-6
        # kill would then have nothing left to hit. Killed during eval 6 first, SIGTERM follows checkpoint 6.
        sigterm = next(p for p in plan if p.sig == signal.SIGTERM)
        plan.remove(sigterm)
        plan.insert(plan.index(chosen_eval) + 1,
                    KillPoint(sigterm.phase, r"checkpoint: .*step_000006", sigterm.delay_sec, signal.SIGTERM))
    if distributed:
        plan = [p for p in plan if p.phase not in ("eval (baseline: host file, gather, summary)", "update (Ctrl-C)")]
    return plan


def check_graceful_exit(point: KillPoint, attempt: Attempt, code: int, run_dir) -> None:
    text = attempt.text()
    if point.sig == signal.SIGINT:
        assert code == 130, text[-3000:]
        assert "interrupted at step" in text and "resume with: python -m simpo_live train" in text, text[-3000:]
    if point.sig == signal.SIGTERM:
        assert code != 0, text[-3000:]
        stopped = re.search(r"stopped by SIGTERM at step (\d+); the last checkpoint is (\S+);", text)
        assert stopped, text[-3000:]
        assert stopped.group(2).endswith(f"step_{int(stopped.group(1)):06d}"), "SIGTERM did not checkpoint its step"
        assert (run_dir / "checkpoints" / f"step_{int(stopped.group(1)):06d}" / "trainer_state.pt").is_file()


def interrupted_run(task_assets, tmp_path, nproc: int) -> None:
    seed = int(os.environ.get("SIMPO_KILL_SEED", random.randrange(2**31)))
    rng = random.Random(seed)
    expected, actual = tmp_path / "uninterrupted", tmp_path / "run"
    # The reference runs in the same directory (then moves), so rows carrying the config digest compare bytewise.
    reference = Attempt(train_command(overrides(task_assets, actual), nproc), tmp_path / "reference.log")
    assert reference.finish() == 0, reference.text()[-3000:]
    actual.rename(expected)
    plan = kill_plan(phase_durations(reference.lines), rng, distributed=nproc > 1)

    hits = []
    for number, point in enumerate(plan):
        attempt = Attempt(train_command(overrides(task_assets, actual), nproc), tmp_path / f"attempt{number}.log")
        if attempt.wait_for_line(point.after_line) is None:
            assert attempt.finish() == 0, attempt.text()[-3000:]
            break  # finished before this point was reached: the rest of the plan has nothing left to hit
        time.sleep(point.delay_sec)
        writing = bool(list((actual / "checkpoints").glob("*.tmp"))) if (actual / "checkpoints").is_dir() else False
        attempt.signal_all(point.sig)
        code = attempt.finish()
        check_graceful_exit(point, attempt, code, actual)
        hits.append(f"{point.phase} +{point.delay_sec:.3f}s{' [checkpoint .tmp present]' if writing else ''}")
    final = Attempt(train_command(overrides(task_assets, actual), nproc), tmp_path / "final.log")
    assert final.finish() == 0, final.text()[-3000:]
    print(f"\nkill seed {seed}, {nproc} rank(s): " + "; ".join(hits))
    # A kill that lands late can resume the next attempt past the line the next point waits for; that point and
    # the rest then have nothing left to hit. The bitwise check below holds whatever was hit.
    assert len(hits) >= len(plan) - 2, f"seed {seed}: only {hits} of the plan were reached"
    assert_same_run(expected, actual, STEPS)


def test_killed_at_random_points_in_one_process_resumes_to_the_same_run(task_assets, tmp_path):
    interrupted_run(task_assets, tmp_path, nproc=1)


@pytest.mark.distributed
def test_killed_at_random_points_under_torchrun_resumes_to_the_same_run(task_assets, tmp_path):
    interrupted_run(task_assets, tmp_path, nproc=2)


@pytest.mark.distributed
def test_ranks_exit_soon_after_their_torchrun_agent_is_killed(task_assets, tmp_path):
    run_dir = tmp_path / "run"
    args = quick_run_overrides(task_assets, run_dir, steps=10_000) + [
        "--trainer.progress=true", "--trainer.checkpoint_every=10000", "--trainer.validate_every=10000"]
    attempt = Attempt(train_command(args, 2), tmp_path / "orphans.log")
    workers: list[int] = []
    try:
        assert attempt.wait_for_line(r"step \d+/10000") is not None, attempt.text()[-3000:]
        workers = descendants(attempt.proc.pid)
        assert len(workers) >= 2, workers
        os.kill(attempt.proc.pid, signal.SIGKILL)  # the agent only: its ranks live on in their own sessions
        killed = time.monotonic()
        while not all(is_gone(pid) for pid in workers) and time.monotonic() - killed < 20:
            time.sleep(0.05)
        waited = time.monotonic() - killed
        assert all(is_gone(pid) for pid in workers), f"ranks still running {waited:.1f}s after the agent died"
        assert waited < 10
        attempt.reader.join(timeout=10)
        assert "the launcher (pid" in attempt.text() and "is gone; exiting" in attempt.text()
    finally:
        attempt.signal_all(signal.SIGKILL)
        for pid in workers:
            if not is_gone(pid):
                os.kill(pid, signal.SIGKILL)
        attempt.proc.wait()
