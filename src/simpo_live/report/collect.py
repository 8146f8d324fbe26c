"""Read a run directory into plain data for the report: metrics, eval summaries, generations by prompt."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpo_live.tracking import read_metrics

MAX_TEXT_CHARS = 2000


@dataclass
class RunData:
    run_dir: Path
    metrics: list[dict[str, Any]]
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> summary.json
    generations: dict[tuple[int, int], dict[int, dict[str, Any]]] = field(default_factory=dict)
    """(global prompt index, sample index) -> step -> row (text cut to MAX_TEXT_CHARS)."""
    prompts: dict[int, str] = field(default_factory=dict)
    num_prompts_total: int = 0


def eval_root(run_dir: Path) -> Path:
    config = run_dir / "config.yaml"
    if config.is_file():
        import yaml

        output_dir = (yaml.safe_load(config.read_text()) or {}).get("inference_eval", {}).get("output_dir")
        if output_dir:
            return Path(output_dir)
    return run_dir / "inference_eval"


def read_rows(step_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(step_dir.glob("host_*_of_*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def collect_run(run_dir: str | Path, max_prompts: int) -> RunData:
    run_dir = Path(run_dir)
    data = RunData(run_dir, read_metrics(run_dir))
    root = eval_root(run_dir)
    step_dirs = sorted(root.glob("step_*")) if root.is_dir() else []
    for step_dir in step_dirs:
        step = int(step_dir.name.removeprefix("step_"))
        summary_path = step_dir / "summary.json"
        if summary_path.is_file():
            data.summaries[step] = json.loads(summary_path.read_text())
        for row in read_rows(step_dir):
            index = row["global_prompt_index"]
            data.num_prompts_total = max(data.num_prompts_total, index + 1)
            if index >= max_prompts:
                continue
            data.prompts[index] = row["prompt"]
            text = row["generated_text"]
            cut = {**row, "generated_text": text[:MAX_TEXT_CHARS], "truncated_for_report": len(text) > MAX_TEXT_CHARS}
            data.generations.setdefault((index, row["sample_index"]), {})[step] = cut
    return data
