"""Trackers: metrics.jsonl always; TensorBoard event files; W&B in offline mode with no network."""

import json

import pytest

from simpo_live.config.schema import TrackerConfig
from simpo_live.tracking import JsonlTracker, build_trackers, read_metrics


def test_jsonl_truncates_lines_after_the_resumed_step(tmp_path):
    tracker = JsonlTracker(tmp_path)
    for step in range(1, 6):
        tracker.log({"train/loss": float(step)}, step)
    tracker.log({"val/loss": float("nan")}, 5)
    tracker.close()
    assert read_metrics(tmp_path)[-1]["val/loss"] == "nan"  # JSON has no NaN: kept visible as a string
    JsonlTracker(tmp_path, resume_step=3).close()
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, 3]


def test_non_leader_writes_nothing(tmp_path):
    tracker = build_trackers(TrackerConfig(type=["jsonl", "tensorboard"]), tmp_path, None, is_leader=False)
    tracker.log({"train/loss": 1.0}, 1)
    tracker.close()
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_events_hold_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = build_trackers(TrackerConfig(type=["jsonl", "tensorboard"]), tmp_path, None, is_leader=True)
    tracker.log({"train/loss": 0.5, "inference_eval/tokens_per_second": 1000.0}, 3)
    tracker.log_table("inference_eval/samples", [{"prompt": "p", "generated_text": "g"}], 3)
    tracker.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("train/loss")] == [(3, 0.5)]
    assert read_metrics(tmp_path)[0] == {"step": 3, "train/loss": 0.5, "inference_eval/tokens_per_second": 1000.0}


def test_wandb_offline_needs_no_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = build_trackers(TrackerConfig(type=["jsonl", "wandb"], wandb_mode="offline"), tmp_path, None,
                             is_leader=True, run_config={"beta": 2.0})
    tracker.log({"train/loss": 0.25}, 1)
    tracker.log_table("inference_eval/samples", [{"prompt": "p", "generated_text": "g"}], 1)
    tracker.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["train/loss"] == 0.25
