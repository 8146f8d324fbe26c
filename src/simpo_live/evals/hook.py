"""The periodic inference eval: after scheduled updates, every rank generates its slice, the leader summarises.

One call per scheduled step, on every rank: generate (or reuse this host's finished file after a resume), score,
gather small per-host stats to the leader over gloo with a timeout, then the leader writes `summary.json` and
returns the metrics (logged with the step). The engine and its KV cache live only inside the call.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from simpo_live.atomic import atomic_write
from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.gather import broadcast_from_leader, gather_to_leader
from simpo_live.distributed.parallel import inference_replica
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.engine import Engine
from simpo_live.evals.context import EvalContext, EvalPlan
from simpo_live.evals.generation import generate_shard
from simpo_live.evals.isolation import generate_in_subprocess
from simpo_live.evals.memory import memory_reading
from simpo_live.evals.probe import probe_weight_handoff
from simpo_live.evals.quality import eval_console_line, reward_statistics, scored_entry, win_rate_metrics, write_scores
from simpo_live.evals.reward import add_rewards, reward_dtype
from simpo_live.evals.scorer import score_rows
from simpo_live.evals.stats import HostStats, summarize_hosts
from simpo_live.host_files import host_file_path, is_host_done, read_host_file, write_host_file

PREFIX = "inference_eval/"


class EvalFailedError(RuntimeError):
    """An eval failed on one or more ranks (with on_error: raise)."""


@dataclass
class HostResult:
    stats: HostStats
    error: str | None = None
    probe: dict[str, float] | None = None
    samples: list[dict[str, Any]] | None = None
    scored: list[dict[str, Any]] | None = None  # quality.scored_entry per row: a few numbers, for win rates


class InferenceEvalHook:
    def __init__(self, cfg: InferenceEvalConfig, plan: EvalPlan):
        self.cfg = cfg
        self.plan = plan

    def my_slice(self, rank: RankInfo) -> tuple[int, int]:
        """The global prompts [start, end) this rank generates: the caller decides, every path obeys."""
        if self.cfg.inference_mode == "leader_only":
            return (0, len(self.plan.prompts)) if rank.is_leader else (0, 0)
        return shard_bounds(len(self.plan.prompts), rank.rank, rank.world_size)

    def __call__(self, ctx: EvalContext) -> dict[str, float] | None:
        began = time.perf_counter()
        step, rank = ctx.step, ctx.rank
        step_dir = self.plan.output_dir / f"step_{step:06d}"
        summary_path = step_dir / "summary.json"
        if summary_path.is_file():  # summarised by a run killed before its checkpoint: log what it found
            if not rank.is_leader:
                return None
            return {PREFIX + k: v for k, v in json.loads(summary_path.read_text())["metrics"].items()}
        memory_before = memory_reading(ctx.device)
        try:
            result = self.run_host(ctx, step_dir)
        except Exception:  # every rank must still reach the gather, so a failure travels as data
            result = HostResult(HostStats(rank.rank), error=traceback.format_exc())
        results = gather_to_leader(result, rank, self.plan.timeout_sec, f"inference eval at step {step}")
        failed = broadcast_from_leader([(i, r.error) for i, r in enumerate(results or []) if r.error],
                                       rank, self.plan.timeout_sec)
        if failed:
            return self.handle_failure(step_dir, step, failed, rank.is_leader)
        if not rank.is_leader:
            return None
        metrics = summarize_hosts([r.stats for r in results], self.plan.reference_lengths)
        entries = [entry for r in results for entry in r.scored or []]
        metrics.update(reward_statistics(entries))
        write_scores(step_dir, entries)  # before the win rates: this step may be its own baseline
        win_rates, against = win_rate_metrics(step, entries, self.plan.schedule, self.plan.output_dir)
        metrics.update(win_rates)
        metrics["total_callback_time_sec"] = time.perf_counter() - began
        metrics.update({f"memory_before_{k}": v for k, v in memory_before.items()})
        metrics.update({f"memory_after_{k}": v for k, v in memory_reading(ctx.device).items()})
        reward_model = self.plan.reward_model
        summary = {"step": step, "config_digest": self.plan.config_digest, "metrics": metrics,
                   "score_source": self.score_source(), "compared_against": against,
                   "reward_model": reward_model.provenance() if reward_model else None,
                   "probe": results[0].probe, "hosts": [r.stats.to_dict() for r in results],
                   "reference_lengths": self.plan.reference_lengths}
        with atomic_write(step_dir / "summary.json") as f:
            json.dump(summary, f, indent=1)
        ctx.tracker.log_table("inference_eval/samples", results[0].samples or [], step)
        announce(ctx, eval_console_line(step, metrics))
        return {PREFIX + k: v for k, v in metrics.items()}

    def score_source(self) -> str | None:
        if self.plan.reward_model is not None:
            return "reward_model"
        return "scorer" if self.plan.scorer is not None else None

    def run_host(self, ctx: EvalContext, step_dir: Path) -> HostResult:
        rank = ctx.rank
        start, end = self.my_slice(rank)
        stats = HostStats(rank.rank)
        probe = None
        done = is_host_done(step_dir, rank.rank, rank.world_size)
        # Under FSDP gathering the replica is a collective, so every rank enters this, finished file or not.
        with inference_replica(ctx.model, self.plan.engine_dtype) as model:
            if done:
                rows = read_host_file(host_file_path(step_dir, rank.rank, rank.world_size))
            else:
                rows, probe = self.generate(ctx, model, start, end, stats, step_dir)
        if not done:  # the replica and the engine are gone: the reward model takes their memory
            self.score(rows, ctx.device, stats)
            write_host_file(step_dir, rows, rank.rank, rank.world_size)
        for row in rows:
            stats.add_row(row, row.get("score"))
        keep = ("global_prompt_index", "sample_index", "prompt", "generated_text", "finish_reason",
                "generated_token_count", "score", "reward")
        samples = [{k: row[k] for k in keep if k in row} for row in rows[: self.cfg.max_logged_samples]]
        return HostResult(stats, probe=probe, samples=samples, scored=[scored_entry(row) for row in rows])

    def score(self, rows: list[dict[str, Any]], device: torch.device, stats: HostStats) -> None:
        """The user scorer, then the reward model (loaded for this call only)."""
        began = time.perf_counter()
        score_rows(rows, self.plan.scorer)
        if self.plan.reward_model is not None:
            add_rewards(rows, self.plan.reward_model, reward_dtype(self.cfg.reward_model_dtype, device), device,
                        self.cfg.reward_batch_tokens)
        stats.scoring_time_sec = time.perf_counter() - began

    def generate(self, ctx: EvalContext, model, start: int, end: int, stats: HostStats, step_dir: Path):
        """Rows of global prompts [start, end), in this process or in a `simpo-live sample` child."""
        if end <= start:
            return [], None
        plan, rank, step = self.plan, ctx.rank, ctx.step
        provenance = {"config_digest": plan.config_digest}
        began = time.perf_counter()
        if self.cfg.isolation == "subprocess":
            rows = generate_in_subprocess(model, ctx.tokenizer, plan.prompts, (start, end), plan.settings, step, rank,
                                          step_dir / f"work_{rank.rank:04d}", plan.engine, plan.timeout_sec)
            for row in rows:
                row.pop("model_path", None)
                row.update(provenance)
            stats.generation_time_sec = time.perf_counter() - began
            return rows, None
        probe = None
        progress = generation_progress(ctx, (end - start) * plan.settings.n)
        with Engine(model, ctx.tokenizer, plan.engine) as engine:
            stats.engine_creation_time_sec = time.perf_counter() - began
            began = time.perf_counter()
            rows = generate_shard(engine, plan.prompts[start:end], start, plan.settings, step, rank.rank,
                                  rank.world_size, provenance, on_step=progress.update if progress else None)
            stats.generation_time_sec = time.perf_counter() - began
            if progress:
                progress.close()
            if rank.is_leader:
                probe = probe_weight_handoff(engine, model, plan.prompts[0], plan.settings)
        return rows, probe

    def handle_failure(self, step_dir: Path, step: int, failed: list[tuple[int, str]], is_leader: bool
                       ) -> dict[str, float] | None:
        message = "; ".join(f"rank {i}: {err.strip().splitlines()[-1]}" for i, err in failed)
        if self.cfg.on_error == "raise":
            raise EvalFailedError(f"inference eval at step {step} failed on {message}\n{failed[0][1]}")
        if not is_leader:
            return None
        record = {"step": step, "failed_ranks": [i for i, _ in failed],
                  "errors": {str(i): err for i, err in failed}}
        self.plan.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.plan.output_dir / "errors.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"warning: inference eval at step {step} failed ({message}); training continues. "
              f"Traceback in {self.plan.output_dir / 'errors.jsonl'}", flush=True)
        return {PREFIX + "failed": 1.0}


def generation_progress(ctx: EvalContext, num_samples: int):
    """Leader-only generation progress (samples, tokens/s); quiet on other ranks."""
    if not ctx.rank.is_leader or ctx.progress is None or not ctx.progress.enabled:
        return None
    from simpo_live.evals.progress import GenerationProgress

    return GenerationProgress(ctx.step, num_samples, ctx.progress)


def announce(ctx: EvalContext, line: str) -> None:
    """The leader's one line per eval, above the progress bar when there is one."""
    if ctx.progress is not None and ctx.progress.enabled:
        ctx.progress.write(line)
    else:
        print(line, flush=True)
