"""Packed micro-batches under torchrun: two FSDP ranks whose token budgets give them different numbers of
micro-batches (so one runs fillers through FSDP's collectives) train like one process, within the tolerances
of test_torchrun_training.py (the micro-batches differ, so sums are reordered)."""

from __future__ import annotations

import pytest

from launchers import read_metrics, train_one_process, train_torchrun
from run_overrides import quick_run_overrides

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

# Pairs of 20-50 tokens (data.max_seq_len 32 drops longer ones) in budgets of 64: one or two pairs per micro-batch;
# the two ranks need 4 and 3 micro-batches at step 1, 2 and 3 at step 2.
SMALL_BUDGET = ["--data.max_seq_len=32", "--data.max_prompt_len=16", "--data.overlong=drop",
                "--trainer.micro_batch_tokens=64", "--trainer.distributed_timeout_sec=60", "--trainer.validate_every=1000"]
COMPARED = ("train/loss", "train/margin", "train/chosen_logp", "train/rejected_logp", "train/grad_norm",
            "train/num_tokens")


def test_uneven_packing_over_two_fsdp_ranks_trains_like_one_process(task_assets, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train_one_process(quick_run_overrides(task_assets, one, steps=2) + SMALL_BUDGET)
    train_torchrun(quick_run_overrides(task_assets, two, steps=2) + SMALL_BUDGET + ["--trainer.strategy=fsdp"])
    rows = {name: [r for r in read_metrics(d) if "train/loss" in r] for name, d in (("one", one), ("two", two))}
    assert [r["step"] for r in rows["two"]] == [1, 2]
    # Fillers are counted as padding: a rank ran more micro-batches than its pairs needed at some step.
    assert any(r["train/padding_share"] > 0 for r in rows["two"])
    assert all(r["train/padding_share"] == 0 for r in rows["one"])
    for got, want in zip(rows["two"], rows["one"]):
        assert {k: got[k] for k in COMPARED} == pytest.approx({k: want[k] for k in COMPARED}, rel=1e-5, abs=1e-6)
