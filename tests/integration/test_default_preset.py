"""The embedded default preset: pinned first losses, and a short run of the whole default (with evals)."""

import json

import pytest

from simpo_live.config import load_config
from simpo_live.tracking import read_metrics
from simpo_live.training_run import run_training

# First three SimPO losses of the bundled tiny model on the bundled data (fp32, CPU). Warmup is 10 steps, so a
# 3-step run follows the same learning rates as the full 200-step default. Pinned on the padded layout; the packed
# one (the default) computes the same sums in another order and stays within 2e-6 of them (1.3e-7 measured).
PINNED_LOSSES = [0.48604312539100647, 0.28761276602745056, 0.47337281703948975]


@pytest.mark.parametrize("packing", ["true", "false"])
def test_first_losses_of_the_tiny_preset_are_pinned(tmp_path, packing):
    cfg = load_config(overrides=[f"--trainer.run_dir={tmp_path}", "--trainer.num_train_steps=3",
                                 "--inference_eval.enabled=false", "--trainer.progress=false",
                                 "--trainer.num_threads=1", "--trainer.validate_every=1000",
                                 f"--trainer.packing={packing}"])
    assert run_training(cfg) == 0
    losses = [row["train/loss"] for row in read_metrics(tmp_path) if "train/loss" in row]
    assert losses == pytest.approx(PINNED_LOSSES, abs=2e-6)


def test_default_preset_with_its_evals_runs_end_to_end(tmp_path):
    """The default's eval schedule and scorer, shortened: 4 updates with evals at 0 (baseline), 2 and 4."""
    cfg = load_config(overrides=[f"--trainer.run_dir={tmp_path}", "--trainer.num_train_steps=4",
                                 "--inference_eval.eval_at_steps=[2,4]", "--inference_eval.heldout_prompt_count=8",
                                 "--trainer.progress=false", "--trainer.num_threads=1"])
    assert run_training(cfg) == 0
    evals = [row for row in read_metrics(tmp_path) if "inference_eval/scorer_mean" in row]
    assert [row["step"] for row in evals] == [0, 2, 4]
    rows = [json.loads(line) for line in
            (tmp_path / "inference_eval" / "step_000000" / "host_0000_of_0001.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(row["prompt"].startswith("reverse:") for row in rows)
    assert all(row["finish_reason"] == "stop" for row in rows)  # the base model answers and ends its turn
