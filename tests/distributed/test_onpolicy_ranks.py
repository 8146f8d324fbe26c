"""On-policy training end to end: one process with two rounds (their files in the UltraFeedback layout with
provenance, their logged numbers, updates that train on exactly the round's pairs in the round's seeded order), and
real torchrun with 2 ranks (DDP, gloo/CPU) making the same pairs as one process.

Under torchrun each rank generates and scores its contiguous slice of the round's prompts and every rank trains on
all hosts' pairs. The step-2 round samples from weights trained on step-0 pairs, which DDP reproduces bitwise at
this shape (global batch 8, micro-batch 4; see test_torchrun_training.py), so the pairs must be equal, not close.
"""

from __future__ import annotations

import json

import pytest

import torch
from launchers import read_jsonl, train_torchrun
from safetensors.torch import load_file

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.data import load_tokenizer, read_preference_records, tokenize_records
from simpo_live.data.batches import global_batch_indices
from simpo_live.onpolicy.source import round_order_seed
from simpo_live.tracking import read_metrics
from simpo_live.training_run import run_training

ROUNDS, PROMPTS, SAMPLES = (0, 2), 6, 4
PER_HOST = ("process_index", "process_count", "config_digest")  # the digest covers run_dir


def onpolicy_overrides(task_assets, run_dir, steps: int = 4) -> list[str]:
    return quick_run_overrides(task_assets, run_dir, steps=steps) + [
        "--onpolicy.enabled=true", f"--onpolicy.at_steps=[{','.join(map(str, ROUNDS))}]",
        f"--onpolicy.prompts_per_round={PROMPTS}", f"--onpolicy.samples_per_prompt={SAMPLES}",
        "--onpolicy.max_new_tokens=6", "--onpolicy.scorer=tests_scorers:word_count",
        "--trainer.distributed_timeout_sec=60"]


@pytest.fixture(scope="module")
def run(task_assets, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("onpolicy") / "run"
    assert run_training(load_config(overrides=onpolicy_overrides(task_assets, run_dir))) == 0
    return run_dir


def host_file(run_dir, step):
    return run_dir / "onpolicy" / f"round_{step:06d}" / "host_0000_of_0001.jsonl"


def test_each_round_writes_scored_pairs_in_the_ultrafeedback_layout(run, task_assets):
    _, data_path = task_assets
    data_lines = data_path.read_text().splitlines()
    for step in ROUNDS:
        rows = [json.loads(line) for line in host_file(run, step).read_text().splitlines()]
        records = read_preference_records(host_file(run, step))  # loadable as offline preference data
        summary = json.loads((host_file(run, step).parent / "round.json").read_text())["metrics"]
        assert summary["prompts"] == PROMPTS and summary["samples"] == PROMPTS * SAMPLES
        assert summary["pairs"] + summary["dropped_tied"] + summary["dropped_identical"] == PROMPTS
        assert summary["pairs"] == len(rows) > 0
        for row, record in zip(rows, records):
            assert row["step"] == step and row["score_source"] == "scorer:tests_scorers:word_count"
            chosen, rejected = record.chosen, record.rejected
            assert (row["chosen_score"], row["rejected_score"]) == (len(chosen.split()), len(rejected.split()))
            assert row["chosen_score"] == max(row["scores"]) > min(row["scores"]) == row["rejected_score"]
            assert len(row["scores"]) == len(row["seeds"]) == SAMPLES
            # The pair's prompt is the one on the data line its provenance names (keyed by prompt, not position).
            line = int(row["prompt_source"].rsplit(":", 1)[1])
            assert json.loads(data_lines[line - 1])["prompt"] == row["prompt"] == record.prompt_messages[0]["content"]
        indices = [row["global_prompt_index"] for row in rows]
        assert indices == sorted(set(indices)) and all(0 <= i < PROMPTS for i in indices)


def test_updates_after_a_round_train_on_its_pairs_in_its_seeded_order(run, task_assets):
    model_dir, _ = task_assets
    tokenizer = load_tokenizer(model_dir)
    cfg = load_config(overrides=onpolicy_overrides(task_assets, run))
    logged = {row["step"]: row["train/num_tokens"] for row in read_metrics(run) if "train/num_tokens" in row}
    for step in range(4):  # update `step` (0-based) is logged as step + 1
        round_step = max(r for r in ROUNDS if r <= step)
        pairs, _ = tokenize_records(read_preference_records(host_file(run, round_step)), tokenizer,
                                    cfg.data.max_seq_len, cfg.data.max_prompt_len, "drop")
        order = global_batch_indices(len(pairs), cfg.trainer.train_batch_size, step - round_step,
                                     round_order_seed(cfg.trainer.seed, round_step))
        expected = sum(2 * len(pairs[i].prompt_ids) + len(pairs[i].chosen_ids) + len(pairs[i].rejected_ids)
                       for i in order)
        assert logged[step + 1] == expected, f"update {step}"


def test_each_round_is_logged_and_reported(run):
    rows = read_metrics(run)
    for step in ROUNDS:
        (row,) = [r for r in rows if r["step"] == step and "onpolicy/pairs" in r]
        for key in ("prompts", "dropped_tied", "dropped_identical", "dropped_overlong", "score_gap_mean",
                    "chosen_tokens_mean", "rejected_tokens_mean", "generate_time_sec", "tokenize_time_sec"):
            assert f"onpolicy/{key}" in row
        assert row["onpolicy/score_gap_mean"] > 0
    assert "id='onpolicy-rounds'" in (run / "report.html").read_text()


def pair_rows(run_dir, step: int, world_size: int) -> list[list[dict]]:
    directory = run_dir / "onpolicy" / f"round_{step:06d}"
    return [[{k: v for k, v in row.items() if k not in PER_HOST}
             for row in read_jsonl(directory / f"host_{i:04d}_of_{world_size:04d}.jsonl")] for i in range(world_size)]


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_two_ranks_make_the_pairs_of_one_and_train_to_the_same_weights(run, task_assets, tmp_path):
    two = tmp_path / "two"
    train_torchrun(onpolicy_overrides(task_assets, two))
    for step in ROUNDS:
        (want,), got = pair_rows(run, step, 1), pair_rows(two, step, 2)
        assert want and got[0] + got[1] == want, f"round {step}"
        assert {r["global_prompt_index"] for r in got[0]} <= {0, 1, 2} and \
            {r["global_prompt_index"] for r in got[1]} <= {3, 4, 5}  # shard_bounds(6, rank, 2): contiguous slices
    final = "checkpoints/step_000004/model.safetensors"
    a, b = load_file(run / final), load_file(two / final)
    assert all(torch.equal(a[name], b[name]) for name in a), "final weights differ"
