"""`metrics.jsonl`: one JSON object per logged step, flushed line by line so a crash loses nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simpo_live.atomic import atomic_write

METRICS_FILE = "metrics.jsonl"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash
    return rows


class JsonlTracker:
    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        if resume_step is not None:
            self._truncate_after(resume_step)
        self.file = open(self.path, "a")

    def _truncate_after(self, step: int) -> None:
        """Drop lines logged after the checkpoint we resume from: they will be logged again."""
        kept = [row for row in read_metrics(self.path.parent) if row.get("step", 0) <= step]
        with atomic_write(self.path) as f:
            for row in kept:
                f.write(json.dumps(row) + "\n")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step, **{k: _json_safe(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def log_table(self, name: str, rows: list[dict[str, Any]], step: int) -> None:
        """Tables live in their own files (the eval writes full JSONL); metrics.jsonl stays scalar."""

    def close(self) -> None:
        self.file.close()
