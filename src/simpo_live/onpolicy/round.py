"""One on-policy round, on every rank: generate and score its slice of the round's prompts (n seeded samples each;
one rollout, rollout/every_rank.py), pair them per prompt into its host file; then every rank reads all host files
and tokenises the pairs, which the data source trains on until the next round. The leader writes `round.json` and
logs the round.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from simpo_live.distributed.sharding import shard_bounds
from simpo_live.onpolicy.files import read_pair_rows, read_summary, round_dir, tokenize_pair_rows, write_summary
from simpo_live.onpolicy.pairs import build_pairs
from simpo_live.onpolicy.plan import RoundPlan
from simpo_live.onpolicy.source import OnPolicyPairs
from simpo_live.onpolicy.summary import console_line, round_metrics
from simpo_live.rollout.context import RolloutContext, announce
from simpo_live.rollout.every_rank import (
    Generated,
    HostOutput,
    HostWork,
    RolloutFailedError,
    failure_message,
    run_on_every_rank,
)
from simpo_live.rollout.host_files import read_sidecar

PREFIX = "onpolicy/"


class RoundFailedError(RolloutFailedError):
    """A round failed on one or more ranks; every rank raises it (a run cannot train on half a round)."""


class OnPolicyRound:
    def __init__(self, plan: RoundPlan, source: OnPolicyPairs):
        self.plan, self.source = plan, source

    def __call__(self, ctx: RolloutContext) -> dict[str, float] | None:
        step, rank = ctx.step, ctx.rank
        directory = round_dir(self.plan.output_dir, step)
        summary = read_summary(directory)
        if summary is None:
            hosts = self.run_round(ctx, directory)
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

    def run_round(self, ctx: RolloutContext, directory: Path) -> list[dict[str, Any]] | None:
        """Every rank's slice generated, scored and paired into its host file; the hosts' counts on the leader."""
        rank = ctx.rank
        prompts = self.plan.prompts_for(ctx.step)
        prompt_slice = shard_bounds(len(prompts), rank.rank, rank.world_size)
        work = HostWork(finish=lambda generated: self.pair(ctx, prompts, generated),
                        reuse=lambda: read_sidecar(directory, rank.rank, rank.world_size))
        what = f"on-policy round at step {ctx.step}"
        results = run_on_every_rank(ctx, self.plan.rollout, [p for p, _ in prompts], prompt_slice, directory, work,
                                    what)
        if results.failed:
            raise RoundFailedError(failure_message(what, results.failed))
        return results.values

    def pair(self, ctx: RolloutContext, prompts: list[tuple[str, str]], generated: Generated
             ) -> HostOutput[dict[str, Any]]:
        """This host's pairs (its host file) and its counts and timings (the sidecar, and what the leader gets)."""
        rank, settings, rows = ctx.rank, self.plan.rollout.settings, generated.rows
        began = time.perf_counter()
        provenance = {"score_source": self.plan.score_source, "process_index": rank.rank,
                      "process_count": rank.world_size, "config_digest": self.plan.config_digest,
                      "temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k,
                      "max_new_tokens": settings.max_new_tokens, "run_seed": settings.seed}
        pairs, counts = build_pairs(rows, provenance)
        pairs = [replace(pair, prompt_source=prompts[pair.global_prompt_index][1]) for pair in pairs]
        times = {"score_time_sec": generated.scoring_time_sec, "pair_time_sec": time.perf_counter() - began}
        if rows:  # an engine ran
            times = {"engine_creation_time_sec": generated.engine_creation_time_sec,
                     "generate_time_sec": generated.generation_time_sec, **times}
        stats = {"rank": rank.rank, "num_samples": len(rows),
                 "generated_tokens": sum(row.generated_token_count for row in rows),
                 "stopped_by_length": sum(row.finish_reason == "length" for row in rows),
                 **asdict(counts), **times}
        return HostOutput([pair.to_json() for pair in pairs], stats, sidecar=stats)
