"""Training end to end on one process: CLI, files, resume equivalence, HF export, errors."""

import json
import subprocess
import sys

import pytest
import torch
import transformers
from safetensors.torch import load_file

from run_overrides import quick_run_overrides
from simpo_live import training_run
from simpo_live.config import load_config
from simpo_live.tracking import read_metrics
from simpo_live.train.checkpoint import STATE_FILE, list_checkpoints
from simpo_live.training_run import run_training

TIMING_KEYS = ("tokens_per_sec", "time_sec")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "simpo_live", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def without_timing(rows):
    return [{k: v for k, v in row.items() if not k.endswith(TIMING_KEYS)} for row in rows]


def test_cli_train_writes_the_run_directory(task_assets, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", *quick_run_overrides(task_assets, run_dir))
    assert result.returncode == 0, result.stderr
    assert str(run_dir.resolve()) in result.stdout
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoints", "report.html"}
    rows = read_metrics(run_dir)
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    for key in ("train/loss", "train/chosen_logp", "train/rejected_logp", "train/margin", "train/reward_accuracy",
                "train/margin_accuracy", "train/grad_norm", "train/lr", "train/tokens_per_sec"):
        assert key in train_rows[0]
    assert [r["step"] for r in rows if "val/loss" in r] == [0, 2, 4]
    # The saved config reproduces the resolved config exactly.
    again = cli("config", "--config", str(run_dir / "config.yaml"))
    assert again.stdout == (run_dir / "config.yaml").read_text()


def test_resumed_run_equals_uninterrupted_run(task_assets, tmp_path, monkeypatch):
    overrides = lambda name: quick_run_overrides(task_assets, tmp_path / name, steps=6)  # noqa: E731
    assert run_training(load_config(overrides=overrides("straight"))) == 0

    class Crash(Exception):
        pass

    def crash(session):
        raise Crash()

    original = training_run.register_inference_eval
    monkeypatch.setattr(training_run, "register_inference_eval", lambda s: s.hooks.add("crash", crash, at_steps=[5]))
    with pytest.raises(Crash):
        run_training(load_config(overrides=overrides("resumed")))
    assert [step for step, _ in list_checkpoints(tmp_path / "resumed")] == [2, 4]
    monkeypatch.setattr(training_run, "register_inference_eval", original)
    assert run_training(load_config(overrides=overrides("resumed"))) == 0

    assert without_timing(read_metrics(tmp_path / "straight")) == without_timing(read_metrics(tmp_path / "resumed"))
    final = lambda name: load_file(tmp_path / name / "checkpoints" / "step_000006" / "model.safetensors")  # noqa: E731
    straight, resumed = final("straight"), final("resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_checkpoints_keep_the_last_k_and_hold_no_tracker(task_assets, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step_000099.tmp").mkdir(parents=True)  # a crashed save: never resumed from
    overrides = quick_run_overrides(task_assets, run_dir, steps=6) + ["--trainer.checkpoint_every=1",
                                                                      "--trainer.keep_last_checkpoints=2"]
    assert run_training(load_config(overrides=overrides)) == 0
    assert [step for step, _ in list_checkpoints(run_dir)] == [5, 6]
    state = torch.load(run_dir / "checkpoints" / "step_000006" / STATE_FILE, weights_only=False)
    assert set(state) == {"step", "optimizer", "scheduler", "rng", "skipped_updates"} and state["step"] == 6


def test_hf_export_loads_in_transformers(task_assets, tmp_path):
    run_dir = tmp_path / "run"
    overrides = quick_run_overrides(task_assets, run_dir) + [f"--hf_save_path={tmp_path / 'hf'}", "--hf_save_steps=2"]
    assert run_training(load_config(overrides=overrides)) == 0
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["step-2", "step-4"]
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf" / "step-4").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf" / "step-4")
    from simpo_live.model.checkpoint import load_model

    ours = load_model(run_dir / "checkpoints" / "step_000004").eval()
    ids = torch.tensor([tokenizer("reverse: ba be bi").input_ids])
    with torch.no_grad():
        assert (exported(ids).logits - ours(ids)).abs().max().item() <= 1e-4


def test_bad_data_row_is_named_and_nothing_is_trained(task_assets, tmp_path):
    model_dir, data_path = task_assets
    bad = tmp_path / "bad.jsonl"
    lines = data_path.read_text().splitlines()
    row = json.loads(lines[2])
    row["chosen"] = 7
    bad.write_text("\n".join(lines[:2] + [json.dumps(row)] + lines[3:]) + "\n")
    result = cli("train", *quick_run_overrides(task_assets, tmp_path / "run"), f"--data.train_path={bad}")
    assert result.returncode == 1
    assert f"{bad}:3" in result.stderr and "chosen" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_config_exits_2_with_every_problem(tmp_path):
    result = cli("train", "--trainer.num_train_stepz=3", "--beta=0")
    assert result.returncode == 2
    assert "trainer.num_train_stepz: unknown key (did you mean trainer.num_train_steps?)" in result.stderr
    assert "beta: Input should be greater than 0" in result.stderr


def test_help_lists_every_config_key_with_its_value_source_and_description(tmp_path):
    result = cli("train", "--help")
    assert result.returncode == 0
    assert "--trainer.num_train_steps=VALUE  [200, from preset default.yaml:5]" in result.stdout
    assert "--trainer.seed=VALUE  [0, from schema default]" in result.stdout
    assert "Optimizer updates to run." in result.stdout
    assert "--inference_eval.enabled=VALUE  [true, from preset default.yaml:" in result.stdout  # schema says false
    config = tmp_path / "run.yaml"
    config.write_text("trainer:\n  seed: 7\n")
    result = cli("train", "--config", str(config), "--beta=3", "--help")
    assert f"--trainer.seed=VALUE  [7, from {config}:2]" in result.stdout
    assert "--beta=VALUE  [3.0, from --beta=3]" in result.stdout
    assert '--trainer.run_dir=VALUE  ["runs/run", from --config' in result.stdout
