"""LoRA under real torchrun (2 ranks, gloo/CPU): DDP and FSDP2 (the frozen base sharded too) train the adapters of
one process, from the same seeded initial adapters, and the eval's merged replica generates its rows.

Tolerances as in test_torchrun_training.py (its docstring says why they hold). An FSDP run resumed from its step-2
checkpoint (adapters and the sharded AdamW state) ends with the adapters of the uninterrupted one.
"""

from __future__ import annotations

import json
import shutil

import pytest

from launchers import train_one_process, train_torchrun
from run_overrides import quick_run_overrides
from test_torchrun_training import assert_same_curve, assert_same_weights, host_rows, without_host_fields

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

PROMPTS = ["reverse: ba be bi", "reverse: bo bu", "reverse: be ba bo bi"]
LORA = ["--lora.rank=4", "--lora.alpha=8", "--optimizer.learning_rate=1e-2", "--trainer.distributed_timeout_sec=60",
        "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[4]", "--inference_eval.max_new_tokens=8",
        f"--inference_eval.prompts={json.dumps(PROMPTS)}"]
ADAPTERS = "checkpoints/step_000004/adapter_model.safetensors"


@pytest.fixture(scope="module")
def runs(task_assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_runs")
    train_one_process(quick_run_overrides(task_assets, root / "one", steps=4) + LORA)
    for strategy in ("ddp", "fsdp"):
        train_torchrun(quick_run_overrides(task_assets, root / strategy, steps=4) + LORA +
                       [f"--trainer.strategy={strategy}"])
    return root


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_train_the_adapters_of_one_process(runs, strategy):
    assert_same_curve(runs / strategy, runs / "one")
    assert_same_weights(runs / strategy / ADAPTERS, runs / "one" / ADAPTERS)
    one = host_rows(runs / "one" / "inference_eval" / "step_000004", 1)[0]
    two = [row for rows in host_rows(runs / strategy / "inference_eval" / "step_000004", 2) for row in rows]
    assert len(one) == len(PROMPTS) and without_host_fields(two) == without_host_fields(one)


def test_an_fsdp_run_resumed_from_its_adapters_ends_where_the_uninterrupted_one_did(runs, task_assets, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(runs / "fsdp" / "checkpoints" / "step_000002", resumed / "checkpoints" / "step_000002")
    shutil.copy(runs / "fsdp" / "config.yaml", resumed / "config.yaml")
    train_torchrun(quick_run_overrides(task_assets, resumed, steps=4) + LORA + ["--trainer.strategy=fsdp"])
    assert_same_weights(resumed / ADAPTERS, runs / "fsdp" / ADAPTERS)
