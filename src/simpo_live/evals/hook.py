"""The periodic inference eval: after scheduled updates, every rank generates and scores its slice (one rollout,
rollout/every_rank.py), then the leader summarises: health statistics, rewards, win rates against the baseline,
`summary.json`, the metrics logged with the step and one console line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from simpo_live.atomic import atomic_write
from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.evals.plan import EvalPlan
from simpo_live.evals.quality import ScoreEntry, eval_console_line, reward_statistics, win_rate_metrics, write_scores
from simpo_live.evals.stats import HostStats, summarize_hosts
from simpo_live.rollout.context import RolloutContext, announce
from simpo_live.rollout.every_rank import (
    Generated,
    HostOutput,
    HostWork,
    RolloutFailedError,
    failed_ranks,
    failure_message,
    run_on_every_rank,
)
from simpo_live.rollout.host_files import host_file_path
from simpo_live.rollout.rows import read_generation_rows
from simpo_live.rollout.memory import memory_reading

PREFIX = "inference_eval/"
SAMPLE_FIELDS = ("global_prompt_index", "sample_index", "prompt", "generated_text", "finish_reason",
                 "generated_token_count", "score", "reward")


class EvalFailedError(RolloutFailedError):
    """An eval failed on one or more ranks (with on_error: raise)."""


@dataclass
class HostResult:
    """What one host sends the leader: its statistics, a few rows for the trackers, and a few numbers per row."""

    stats: HostStats
    probe: dict[str, float] | None = None
    samples: list[dict[str, Any]] | None = None
    scored: list[ScoreEntry] | None = None  # a few numbers per row, for win rates


class InferenceEvalHook:
    def __init__(self, cfg: InferenceEvalConfig, plan: EvalPlan):
        self.cfg = cfg
        self.plan = plan

    def my_slice(self, rank: RankInfo) -> tuple[int, int]:
        """The global prompts [start, end) this rank generates: the caller decides, every path obeys."""
        if self.cfg.inference_mode == "leader_only":
            return (0, len(self.plan.prompts)) if rank.is_leader else (0, 0)
        return shard_bounds(len(self.plan.prompts), rank.rank, rank.world_size)

    def __call__(self, ctx: RolloutContext) -> dict[str, float] | None:
        began = time.perf_counter()
        step, rank = ctx.step, ctx.rank
        step_dir = self.plan.output_dir / f"step_{step:06d}"
        summary_path = step_dir / "summary.json"
        if summary_path.is_file():  # summarised by a run killed before its checkpoint: log what it found
            if not rank.is_leader:
                return None
            return {PREFIX + k: v for k, v in json.loads(summary_path.read_text())["metrics"].items()}
        memory_before = memory_reading(ctx.device)
        work = HostWork(finish=lambda generated: HostOutput([row.to_json() for row in generated.rows],
                                                            self.host_result(rank, generated)),
                        reuse=lambda: self.host_result(rank, Generated(read_generation_rows(
                            host_file_path(step_dir, rank.rank, rank.world_size)))))
        results = run_on_every_rank(ctx, self.plan.rollout, self.plan.prompts, self.my_slice(rank), step_dir, work,
                                    f"inference eval at step {step}", progress_label="eval", probe=True)
        if results.failed:
            return self.handle_failure(step, results.failed, rank.is_leader)
        if not rank.is_leader:
            return None
        hosts = results.values
        metrics = summarize_hosts([h.stats for h in hosts], self.plan.reference_lengths)
        entries = [entry for h in hosts for entry in h.scored or []]
        metrics.update(reward_statistics(entries))
        write_scores(step_dir, entries)  # before the win rates: this step may be its own baseline
        win_rates, against = win_rate_metrics(step, entries, self.plan.schedule, self.plan.output_dir)
        metrics.update(win_rates)
        metrics["total_callback_time_sec"] = time.perf_counter() - began
        metrics.update({f"memory_before_{k}": v for k, v in memory_before.items()})
        metrics.update({f"memory_after_{k}": v for k, v in memory_reading(ctx.device).items()})
        reward_model = self.plan.rollout.scoring.reward_model
        summary = {"step": step, "config_digest": self.plan.config_digest, "metrics": metrics,
                   "score_source": self.plan.rollout.scoring.source, "compared_against": against,
                   "reward_model": reward_model.provenance() if reward_model else None,
                   "probe": hosts[0].probe, "hosts": [h.stats.to_dict() for h in hosts],
                   "reference_lengths": self.plan.reference_lengths}
        with atomic_write(summary_path) as f:
            json.dump(summary, f, indent=1)
        ctx.tracker.log_table("inference_eval/samples", hosts[0].samples or [], step)
        announce(ctx, eval_console_line(step, metrics))
        return {PREFIX + k: v for k, v in metrics.items()}

    def host_result(self, rank: RankInfo, generated: Generated) -> HostResult:
        stats = HostStats(rank.rank, generation_time_sec=generated.generation_time_sec,
                          scoring_time_sec=generated.scoring_time_sec,
                          engine_creation_time_sec=generated.engine_creation_time_sec)
        for row in generated.rows:
            stats.add_row(row)
        logged = [row.to_json() for row in generated.rows[: self.cfg.max_logged_samples]]
        samples = [{k: row[k] for k in SAMPLE_FIELDS if k in row} for row in logged]
        return HostResult(stats, probe=generated.probe, samples=samples,
                          scored=[ScoreEntry.of(row) for row in generated.rows])

    def handle_failure(self, step: int, failed: list[tuple[int, str]], is_leader: bool) -> dict[str, float] | None:
        what = f"inference eval at step {step}"
        if self.cfg.on_error == "raise":
            raise EvalFailedError(failure_message(what, failed))
        if not is_leader:
            return None
        record = {"step": step, "failed_ranks": [i for i, _ in failed],
                  "errors": {str(i): err for i, err in failed}}
        self.plan.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.plan.output_dir / "errors.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"warning: {what} failed ({failed_ranks(failed)}); training continues. "
              f"Traceback in {self.plan.output_dir / 'errors.jsonl'}", flush=True)
        return {PREFIX + "failed": 1.0}
