"""Trackers: metrics.jsonl always, TensorBoard and Weights & Biases when asked. Only the leader logs."""

from simpo_live.tracking.base import MultiTracker, Tracker, build_trackers
from simpo_live.tracking.jsonl import JsonlTracker, read_metrics

__all__ = ["JsonlTracker", "MultiTracker", "Tracker", "build_trackers", "read_metrics"]
