"""One on-policy round, on every rank: generate its slice of the round's prompts (n seeded samples each), score
them, pair them per prompt, write the host file; then every rank reads all host files and tokenises the pairs,
which the data source trains on until the next round. The leader writes `round.json` and logs the round.

Like the eval: the same replica handling, slices by global prompt index (`shard_bounds`), seeds from the work, a
finished host file reused after a resume. The engine and the reward model live only inside the call.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict
from typing import Any

from simpo_live.distributed.gather import gather_to_all
from simpo_live.distributed.parallel import inference_replica
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.engine import Engine
from simpo_live.evals.context import EvalContext
from simpo_live.evals.generation import generate_shard
from simpo_live.evals.hook import announce
from simpo_live.evals.reward import add_rewards
from simpo_live.evals.scorer import score_rows
from simpo_live.onpolicy.files import (
    read_host_stats,
    read_pair_rows,
    read_summary,
    round_dir,
    tokenize_pair_rows,
    write_host,
    write_summary,
)
from simpo_live.onpolicy.pairs import build_pairs
from simpo_live.onpolicy.plan import RoundPlan
from simpo_live.onpolicy.source import OnPolicyPairs
from simpo_live.onpolicy.summary import console_line, round_metrics

PREFIX = "onpolicy/"


class RoundFailedError(RuntimeError):
    """A round failed on one or more ranks; every rank raises it (a run cannot train on half a round)."""


class OnPolicyRound:
    def __init__(self, plan: RoundPlan, source: OnPolicyPairs):
        self.plan, self.source = plan, source

    def __call__(self, ctx: EvalContext) -> dict[str, float] | None:
        step, rank = ctx.step, ctx.rank
        directory = round_dir(self.plan.output_dir, step)
        summary = read_summary(directory)
        if summary is None:
            try:
                host = self.run_host(ctx, directory)
            except Exception:  # every rank must reach the gather, so a failure travels as data
                host = {"error": traceback.format_exc()}
            hosts = gather_to_all(host, rank, self.plan.timeout_sec, f"on-policy round at step {step}")
            failed = [(i, h["error"]) for i, h in enumerate(hosts) if "error" in h]
            if failed:
                message = "; ".join(f"rank {i}: {err.strip().splitlines()[-1]}" for i, err in failed)
                raise RoundFailedError(f"on-policy round at step {step} failed on {message}\n{failed[0][1]}")
        began = time.perf_counter()
        rows = read_pair_rows(directory, summary["process_count"] if summary else rank.world_size)
        pairs, num_overlong = tokenize_pair_rows(rows, directory, ctx.tokenizer, self.plan.max_seq_len,
                                                 self.plan.max_prompt_len)
        tokenize_time_sec = time.perf_counter() - began
        self.source.use_round(step, pairs)
        if not rank.is_leader:
            return None
        if summary is None:
            metrics = round_metrics(hosts, rows, num_overlong, tokenize_time_sec)
            summary = {"step": step, "process_count": rank.world_size, "score_source": self.plan.score_source,
                       "config_digest": self.plan.config_digest, "metrics": metrics, "hosts": hosts}
            write_summary(directory, summary)
        announce(ctx, console_line(step, summary["metrics"], self.source.num_offline))
        return {PREFIX + k: v for k, v in summary["metrics"].items()}

    def run_host(self, ctx: EvalContext, directory) -> dict[str, Any]:
        """This rank's slice of the round: its counts and timings (after writing its host file)."""
        rank = ctx.rank
        prompts = self.plan.prompts_for(ctx.step)
        start, end = shard_bounds(len(prompts), rank.rank, rank.world_size)
        finished = read_host_stats(directory, rank.rank, rank.world_size)
        times: dict[str, float] = {}
        # Under FSDP gathering the replica is a collective, so every rank enters this, finished file or not.
        with inference_replica(ctx.model, self.plan.engine_dtype) as model:
            if finished is None:
                rows = self.generate(ctx, model, [p for p, _ in prompts[start:end]], start, times)
        if finished is not None:
            return finished
        began = time.perf_counter()
        self.score(rows, ctx)
        times["score_time_sec"] = time.perf_counter() - began
        began = time.perf_counter()
        provenance = {"score_source": self.plan.score_source, "process_index": rank.rank,
                      "process_count": rank.world_size, "config_digest": self.plan.config_digest,
                      "temperature": self.plan.settings.temperature, "top_p": self.plan.settings.top_p,
                      "top_k": self.plan.settings.top_k, "max_new_tokens": self.plan.settings.max_new_tokens,
                      "run_seed": self.plan.settings.seed}
        pairs, counts = build_pairs(rows, provenance)
        for pair in pairs:
            pair["prompt_source"] = prompts[pair["global_prompt_index"]][1]
        times["pair_time_sec"] = time.perf_counter() - began
        stats = {"rank": rank.rank, "num_samples": len(rows),
                 "generated_tokens": sum(r["generated_token_count"] for r in rows),
                 "stopped_by_length": sum(r["finish_reason"] == "length" for r in rows),
                 **asdict(counts), **times}
        write_host(directory, pairs, stats, rank.rank, rank.world_size)
        return stats

    def generate(self, ctx: EvalContext, model, prompts: list[str], start: int,
                 times: dict[str, float]) -> list[dict[str, Any]]:
        if not prompts:
            return []
        began = time.perf_counter()
        with Engine(model, ctx.tokenizer, self.plan.engine) as engine:
            times["engine_creation_time_sec"] = time.perf_counter() - began
            began = time.perf_counter()
            rows = generate_shard(engine, prompts, start, self.plan.settings, ctx.step, ctx.rank.rank,
                                  ctx.rank.world_size)
            times["generate_time_sec"] = time.perf_counter() - began
        return rows

    def score(self, rows: list[dict[str, Any]], ctx: EvalContext) -> None:
        """Every row's `score`: the scorer's value, or the reward model's (loaded for this call only)."""
        if self.plan.reward_model is None:
            score_rows(rows, self.plan.scorer)
            return
        add_rewards(rows, self.plan.reward_model, self.plan.reward_dtype, ctx.device, self.plan.reward_batch_tokens)
        for row in rows:
            row["score"] = row["reward"]

