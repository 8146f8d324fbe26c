"""Weights & Biases; `tracker.wandb_mode: offline` needs no network (sync later with `wandb sync`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simpo_live.config.schema import TrackerConfig


class WandbTracker:
    def __init__(self, cfg: TrackerConfig, run_dir: str | Path, run_config: dict[str, Any]):
        try:
            import wandb
        except ImportError as e:
            raise RuntimeError("tracker.type includes wandb but it is not installed: "
                               "pip install 'simpo-live[wandb]'") from e
        self.wandb = wandb
        self.run = wandb.init(project=cfg.wandb_project, mode=cfg.wandb_mode, dir=str(run_dir),
                              config=run_config, name=Path(run_dir).name, resume="allow")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        if rows:
            columns = list(rows[0])
            table = self.wandb.Table(columns=columns, data=[[str(r.get(c)) for c in columns] for r in rows])
            self.run.log({name: table}, step=step)

    def close(self) -> None:
        self.run.finish()
