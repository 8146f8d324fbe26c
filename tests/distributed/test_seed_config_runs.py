"""The seed's M12 config file, as written (`tests/seed_configs/m12.yaml`), trains on the embedded default's model and
data with small step, prompt and token overrides: in one process and under torchrun with 2 ranks (gloo/CPU).

Both runs evaluate at the steps given, each host writes its contiguous slice, the baseline's generations (before
any update, so from the same weights) are the same text for 1 and 2 ranks, and `train` prints the memory plan as
one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from launchers import read_jsonl, train_one_process, train_torchrun

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

SEED_M12 = Path(__file__).resolve().parents[1] / "seed_configs" / "m12.yaml"
NUM_PROMPTS = 4
SMALL = ["--trainer.num_train_steps=4", "--inference_eval.eval_at_steps=[2,4]",
         f"--inference_eval.synthetic_prompt_count={NUM_PROMPTS}", "--inference_eval.max_new_tokens=8",
         "--trainer.progress=false", "--trainer.distributed_timeout_sec=60"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, tuple[Path, str]]:
    """world size -> (run directory, stdout) of the seed's config trained with the small overrides."""
    root = tmp_path_factory.mktemp("seed_runs")
    one = train_one_process(["--config", str(SEED_M12), f"--trainer.run_dir={root / 'one'}", *SMALL])
    two = train_torchrun(["--config", str(SEED_M12), f"--trainer.run_dir={root / 'two'}", *SMALL])
    return {1: (root / "one", one.stdout), 2: (root / "two", two.stdout)}


def rows_of(run_dir: Path, step: int, world_size: int) -> list[list[dict]]:
    step_dir = run_dir / "inference_eval" / f"step_{step:06d}"
    return [read_jsonl(step_dir / f"host_{i:04d}_of_{world_size:04d}.jsonl") for i in range(world_size)]


@pytest.mark.parametrize("world_size", [1, 2])
def test_the_seed_config_trains_and_evaluates_at_its_steps(runs, world_size):
    run_dir, _ = runs[world_size]
    trained = [row["step"] for row in read_jsonl(run_dir / "metrics.jsonl") if "train/loss" in row]
    assert trained == [1, 2, 3, 4]
    assert sorted(p.name for p in (run_dir / "inference_eval").glob("step_*")) == \
        ["step_000000", "step_000002", "step_000004"]
    for step in (0, 2, 4):
        hosts = rows_of(run_dir, step, world_size)
        indices = [[row["global_prompt_index"] for row in rows] for rows in hosts]
        assert indices == ([[0, 1, 2, 3]] if world_size == 1 else [[0, 1], [2, 3]])
        rows = [row for rows in hosts for row in rows]
        assert all(row["prompt"] == f"Write a short story about item number {row['global_prompt_index']}."
                   for row in rows)
        assert all(row["generated_token_count"] <= 8 for row in rows)


def test_the_baseline_is_the_same_text_on_one_and_two_ranks(runs):
    one = rows_of(runs[1][0], 0, 1)[0]
    two = [row for rows in rows_of(runs[2][0], 0, 2) for row in rows]
    assert [r["generated_text"] for r in two] == [r["generated_text"] for r in one]


@pytest.mark.parametrize("world_size", [1, 2])
def test_train_prints_the_memory_plan_as_one_line(runs, world_size):
    _, stdout = runs[world_size]
    plan_lines = [line for line in stdout.splitlines() if "memory plan" in line]
    assert len(plan_lines) == 1 and plan_lines[0].startswith("memory plan: peak"), stdout[-2000:]
    assert f"on cpu, {world_size} rank" in plan_lines[0] and ": fits" in plan_lines[0]
    assert "train step total" not in stdout
