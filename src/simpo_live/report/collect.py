"""Read a run directory into plain data for the report: metrics, eval summaries, generations by prompt."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpo_live.evals.quality import text_digest
from simpo_live.rollout.host_files import host_files_in, read_host_file
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
    config: dict[str, Any] = field(default_factory=dict)  # the run's config.yaml

    def eval_steps(self) -> list[int]:
        return sorted(self.summaries)

    def latest_summary_with(self, key: str) -> tuple[int, dict[str, Any]] | None:
        steps = [s for s in self.eval_steps() if key in self.summaries[s]["metrics"]]
        return (steps[-1], self.summaries[steps[-1]]) if steps else None


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def eval_root(run_dir: Path, config: dict[str, Any]) -> Path:
    output_dir = (config.get("inference_eval") or {}).get("output_dir")
    return Path(output_dir) if output_dir else run_dir / "inference_eval"


def read_rows(step_dir: Path) -> list[dict[str, Any]]:
    """Every row of the step once: a resume on another world size may leave two sets of host files with the same
    rows (rows do not depend on the host count), so rows are keyed by (global prompt index, sample index)."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for path in host_files_in(step_dir):
        for row in read_host_file(path):
            rows.setdefault((row["global_prompt_index"], row["sample_index"]), row)
    return [rows[key] for key in sorted(rows)]


def collect_run(run_dir: str | Path, max_prompts: int) -> RunData:
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    data = RunData(run_dir, read_metrics(run_dir), config=config)
    root = eval_root(run_dir, config)
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
            cut = {**row, "generated_text": text[:MAX_TEXT_CHARS], "truncated_for_report": len(text) > MAX_TEXT_CHARS,
                   "text_digest": text_digest(text)}
            data.generations.setdefault((index, row["sample_index"]), {})[step] = cut
    return data
