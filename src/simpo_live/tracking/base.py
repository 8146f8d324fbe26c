"""The tracker protocol and a fan-out over the configured trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from simpo_live.config.schema import TrackerConfig


class Tracker(Protocol):
    def log(self, metrics: dict[str, Any], step: int) -> None: ...

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None: ...

    def close(self) -> None: ...


class MultiTracker:
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        for tracker in self.trackers:
            tracker.log_table(name, rows, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


class NullTracker:
    """What non-leader ranks get: they compute metrics but never write them."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        pass

    def close(self) -> None:
        pass


def build_trackers(cfg: TrackerConfig, run_dir: str | Path, resume_step: int | None, is_leader: bool,
                   run_config: dict[str, Any] | None = None) -> Tracker:
    if not is_leader:
        return NullTracker()
    from simpo_live.tracking.jsonl import JsonlTracker

    trackers: list[Tracker] = [JsonlTracker(run_dir, resume_step)]
    if "tensorboard" in cfg.type:
        from simpo_live.tracking.tensorboard import TensorBoardTracker

        trackers.append(TensorBoardTracker(run_dir))
    if "wandb" in cfg.type:
        from simpo_live.tracking.wandb import WandbTracker

        trackers.append(WandbTracker(cfg, run_dir, run_config or {}))
    return MultiTracker(trackers)
