"""On-policy rounds under real torchrun (2 ranks, DDP, gloo/CPU) make the same pairs as one process: each rank
generates and scores (here with a reward model) its contiguous slice of the round's prompts, and every rank trains
on all hosts' pairs. Rounds at steps 0 and 2; the step-2 round samples from weights trained on step-0 pairs, which
DDP reproduces bitwise at this shape (see test_torchrun_training.py), so the pairs (texts, samples, seeds) must be
equal, not close. Rewards are compared to rel 1e-5: a rank scores its own rows in length-sorted batches, and a
batch of other rows leaves other low bits on the same text (measured here: ~3e-8 absolute)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from launchers import read_jsonl, train_torchrun
from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.train.run import run_training

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]
PER_HOST = ("process_index", "process_count", "config_digest")  # the digest covers run_dir
SCORES = ("chosen_score", "rejected_score", "scores")


def overrides(task_assets, run_dir, reward_model) -> list[str]:
    return quick_run_overrides(task_assets, run_dir, steps=4) + [
        "--onpolicy.enabled=true", "--onpolicy.at_steps=[0,2]", "--onpolicy.prompts_per_round=5",
        "--onpolicy.samples_per_prompt=3", "--onpolicy.max_new_tokens=6", f"--onpolicy.reward_model={reward_model}",
        "--trainer.distributed_timeout_sec=60"]


def pair_rows(run_dir, step: int, world_size: int) -> list[dict]:
    directory = run_dir / "onpolicy" / f"round_{step:06d}"
    rows = [row for i in range(world_size)
            for row in read_jsonl(directory / f"host_{i:04d}_of_{world_size:04d}.jsonl")]
    return [{k: v for k, v in row.items() if k not in PER_HOST} for row in rows]


def without_scores(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in SCORES} for row in rows]


def scores(rows: list[dict]) -> list[float]:
    return [x for row in rows for x in [row["chosen_score"], row["rejected_score"], *row["scores"]]]


def test_two_ranks_make_the_pairs_of_one_and_train_to_the_same_weights(task_assets, task_reward_model, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_training(load_config(overrides=overrides(task_assets, one, task_reward_model))) == 0
    train_torchrun(overrides(task_assets, two, task_reward_model))
    for step in (0, 2):
        want, got = pair_rows(one, step, 1), pair_rows(two, step, 2)
        assert want and without_scores(got) == without_scores(want), f"round {step}"
        assert scores(got) == pytest.approx(scores(want), rel=1e-5, abs=1e-6), f"round {step}"
        assert all(row["score_source"].startswith("reward_model:") for row in got)
        hosts = json.loads((two / "onpolicy" / f"round_{step:06d}" / "round.json").read_text())["hosts"]
        assert [h["prompts"] for h in hosts] == [2, 3]  # shard_bounds(5, rank, 2): contiguous slices
    final = "checkpoints/step_000004/model.safetensors"
    a, b = load_file(one / final), load_file(two / final)
    assert all(torch.equal(a[name], b[name]) for name in a), "final weights differ"
