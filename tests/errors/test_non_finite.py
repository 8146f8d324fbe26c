"""Non-finite training: a config that is valid but overflows (beta=1e38 makes the loss infinite) stops at step 1
naming it and the last good checkpoint, or with on_non_finite=skip drops every such update; and no checkpoint is
ever written from non-finite weights."""

import pytest
import torch
from safetensors.torch import load_file

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.errors import NonFiniteError
from simpo_live.model.checkpoint import load_model
from simpo_live.tracking import read_metrics
from simpo_live.train.checkpoint import list_checkpoints
from simpo_live.training_run import run_training

OVERFLOW = ["--beta=1e38", "--trainer.validate_every=100"]


def test_a_non_finite_update_stops_the_run_naming_the_step(task_assets, tmp_path, capsys):
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run", steps=3) + OVERFLOW)
    assert run_training(cfg) == 1
    err = capsys.readouterr().err
    assert "error: step 1: loss" in err and "is not finite; the update was not applied" in err
    assert "The last good checkpoint is none (no checkpoint yet)" in err and "Traceback" not in err
    assert not list_checkpoints(tmp_path / "run")
    assert [row.get("train/update_skipped") for row in read_metrics(tmp_path / "run") if "train/loss" in row] == [1.0]


def test_skip_drops_every_non_finite_update_and_counts_it(task_assets, tmp_path):
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run", steps=4) + OVERFLOW
                      + ["--trainer.on_non_finite=skip"])
    assert run_training(cfg) == 0
    train = [row for row in read_metrics(tmp_path / "run") if "train/loss" in row]
    assert [row["train/skipped_updates"] for row in train] == [1.0, 2.0, 3.0, 4.0]
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_000004" / "trainer_state.pt", weights_only=False)
    assert state["skipped_updates"] == 4  # a resumed run goes on counting
    final = load_file(tmp_path / "run" / "checkpoints" / "step_000004" / "model.safetensors")
    initial = load_model(task_assets[0]).state_dict()
    assert all(torch.equal(final[name], initial[name]) for name in final)  # no update was applied


def test_non_finite_weights_are_never_checkpointed(task_assets, tmp_path):
    from simpo_live.distributed.env import RankInfo
    from simpo_live.train.checkpoint import save_checkpoint
    from simpo_live.train.optim import build_optimizer, build_scheduler

    model = load_model(task_assets[0])
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run"))
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = build_scheduler(optimizer, 4, cfg.optimizer)
    rank = RankInfo(0, 1, 0)
    saved = save_checkpoint(tmp_path, model, model, optimizer, scheduler, 2, None, keep=2, rank=rank)
    assert {p.name: p.stat().st_mode & 0o777 for p in saved.iterdir()} == {
        "model.safetensors": 0o644, "config.json": 0o644, "trainer_state.pt": 0o644}  # like the rest of the run
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(NonFiniteError, match="step 4: weight model.norm.weight is not finite; checkpoint not written"):
        save_checkpoint(tmp_path, model, model, optimizer, scheduler, 4, None, keep=2, rank=rank)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2]
    assert not (tmp_path / "checkpoints" / "step_000004.tmp").exists()
