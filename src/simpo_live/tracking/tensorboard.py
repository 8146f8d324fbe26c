"""TensorBoard event files under `<run_dir>/tensorboard/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class TensorBoardTracker:
    def __init__(self, run_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise RuntimeError("tracker.type includes tensorboard but it is not installed: "
                               "pip install 'simpo-live[tensorboard]'") from e
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] if rows else []
        lines += ["| " + " | ".join(json.dumps(v)[:200].replace("|", "\\|") for v in row.values()) + " |"
                  for row in rows]
        self.writer.add_text(name, "\n".join(lines), step)

    def close(self) -> None:
        self.writer.close()
