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
from simpo_live.config import config_digest
from simpo_live.distributed.gather import broadcast_from_leader, gather_to_leader
from simpo_live.distributed.parallel import inference_replica
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.engine import Engine, EngineConfig
from simpo_live.evals.generation import GenerationSettings, generate_shard, is_host_done, write_host_file
from simpo_live.evals.generation import host_file_name
from simpo_live.evals.isolation import generate_in_subprocess
from simpo_live.evals.memory import memory_reading
from simpo_live.evals.probe import probe_weight_handoff
from simpo_live.evals.scorer import Scorer, score_rows
from simpo_live.evals.stats import HostStats, summarize_hosts

PREFIX = "inference_eval/"


class EvalFailedError(RuntimeError):
    """An eval failed on one or more ranks (with on_error: raise)."""


@dataclass
class HostResult:
    stats: HostStats
    error: str | None = None
    probe: dict[str, float] | None = None
    samples: list[dict[str, Any]] | None = None


class InferenceEvalHook:
    def __init__(self, session, prompts: list[str], scorer: Scorer | None, reference_lengths: dict[str, list[int]],
                 max_seq_len: int):
        cfg = session.cfg.inference_eval
        self.max_seq_len = max_seq_len  # longest prompt + max_new_tokens: KV slots no longer than needed
        self.cfg = cfg
        self.prompts = prompts
        self.scorer = scorer
        self.reference_lengths = reference_lengths
        self.output_dir = Path(cfg.output_dir or Path(session.cfg.trainer.run_dir) / "inference_eval")
        self.timeout_sec = cfg.timeout_sec or session.cfg.trainer.distributed_timeout_sec
        self.digest = config_digest(session.cfg)
        self.settings = GenerationSettings(
            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
            n=cfg.n_samples, ignore_eos=cfg.ignore_eos,
            seed=cfg.seed if cfg.seed is not None else session.cfg.trainer.seed,
            use_chat_template=cfg.use_chat_template)

    def engine_config(self) -> EngineConfig:
        cfg = self.cfg
        return EngineConfig(max_seqs=cfg.max_seqs, page_size=cfg.page_size, max_pages=cfg.max_pages,
                            hbm_utilization=cfg.hbm_utilization, max_tokens_per_round=cfg.max_tokens_per_round,
                            max_seq_len=self.max_seq_len)

    def engine_dtype(self, device) -> torch.dtype | None:
        if self.cfg.dtype == "auto":
            return torch.bfloat16 if device.type == "cuda" else None
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[self.cfg.dtype]

    def my_slice(self, rank) -> tuple[int, int]:
        if self.cfg.inference_mode == "leader_only":
            return (0, len(self.prompts)) if rank.is_leader else (0, 0)
        return shard_bounds(len(self.prompts), rank.rank, rank.world_size)

    def __call__(self, session) -> dict[str, float] | None:
        began = time.perf_counter()
        step, rank = session.step, session.rank
        step_dir = self.output_dir / f"step_{step:06d}"
        memory_before = memory_reading(session.device)
        try:
            result = self.run_host(session, step_dir)
        except Exception:  # every rank must still reach the gather, so a failure travels as data
            result = HostResult(HostStats(rank.rank), error=traceback.format_exc())
        results = gather_to_leader(result, rank, self.timeout_sec, f"inference eval at step {step}")
        failed = broadcast_from_leader([(i, r.error) for i, r in enumerate(results or []) if r.error],
                                       rank, self.timeout_sec)
        if failed:
            return self.handle_failure(step_dir, step, failed, rank.is_leader)
        if not rank.is_leader:
            return None
        summary_path = step_dir / "summary.json"
        if summary_path.is_file():  # summarised by a run killed before its checkpoint: log what it found
            return {PREFIX + k: v for k, v in json.loads(summary_path.read_text())["metrics"].items()}
        metrics = summarize_hosts([r.stats for r in results], self.reference_lengths)
        metrics["total_callback_time_sec"] = time.perf_counter() - began
        metrics.update({f"memory_before_{k}": v for k, v in memory_before.items()})
        metrics.update({f"memory_after_{k}": v for k, v in memory_reading(session.device).items()})
        summary = {"step": step, "config_digest": self.digest, "metrics": metrics,
                   "probe": results[0].probe, "hosts": [r.stats.to_dict() for r in results],
                   "reference_lengths": self.reference_lengths}
        with atomic_write(step_dir / "summary.json") as f:
            json.dump(summary, f, indent=1)
        session.tracker.log_table("inference_eval/samples", results[0].samples or [], step)
        return {PREFIX + k: v for k, v in metrics.items()}

    def run_host(self, session, step_dir: Path) -> HostResult:
        rank = session.rank
        start, end = self.my_slice(rank)
        stats = HostStats(rank.rank)
        probe = None
        # Under FSDP gathering the replica is a collective, so every rank enters this, finished file or not.
        with inference_replica(session.raw_model, self.engine_dtype(session.device)) as model:
            if is_host_done(step_dir, rank.rank, rank.world_size):
                text = (step_dir / host_file_name(rank.rank, rank.world_size)).read_text(encoding="utf-8")
                rows = [json.loads(line) for line in text.splitlines() if line]
            else:
                rows, probe = self.generate(session, model, start, end, stats, step_dir)
                score_rows(rows, self.scorer)
                write_host_file(step_dir, rows, rank.rank, rank.world_size)
        for row in rows:
            stats.add_row(row, row.get("score"))
        keep = ("global_prompt_index", "sample_index", "prompt", "generated_text", "finish_reason",
                "generated_token_count", "score")
        samples = [{k: row[k] for k in keep if k in row} for row in rows[: self.cfg.max_logged_samples]]
        return HostResult(stats, probe=probe, samples=samples)

    def generate(self, session, model, start: int, end: int, stats: HostStats, step_dir: Path):
        rank, step = session.rank, session.step
        provenance = {"config_digest": self.digest}
        if end <= start:
            return [], None
        began = time.perf_counter()
        if self.cfg.isolation == "subprocess":
            options = {"max_seqs": self.cfg.max_seqs, "page_size": self.cfg.page_size, "max_pages": self.cfg.max_pages}
            rows = generate_in_subprocess(model, session.tokenizer, self.prompts, self.settings, step, rank,
                                          step_dir / f"work_{rank.rank:04d}", options, self.timeout_sec)
            for row in rows:
                row.pop("model_path", None)
                row.update(provenance)
            stats.generation_time_sec = time.perf_counter() - began
            return rows, None
        probe = None
        progress = self.progress_callback(session, (end - start) * self.settings.n)
        with Engine.from_model(model, session.tokenizer, self.engine_config()) as engine:
            stats.engine_creation_time_sec = time.perf_counter() - began
            began = time.perf_counter()
            rows = generate_shard(engine, self.prompts[start:end], start, self.settings, step, rank.rank,
                                  rank.world_size, provenance, on_step=progress.update if progress else None)
            stats.generation_time_sec = time.perf_counter() - began
            if progress:
                progress.close()
            if rank.is_leader:
                probe = probe_weight_handoff(engine, model, self.prompts[0], self.settings)
        return rows, probe

    def progress_callback(self, session, num_samples: int):
        """Leader-only generation progress (samples, tokens/s); quiet on other ranks."""
        if not session.rank.is_leader or session.progress is None or not session.progress.enabled:
            return None
        from simpo_live.evals.progress import GenerationProgress

        return GenerationProgress(session.step, num_samples, session.progress)

    def handle_failure(self, step_dir: Path, step: int, failed: list[tuple[int, str]], is_leader: bool
                       ) -> dict[str, float] | None:
        message = "; ".join(f"rank {i}: {err.strip().splitlines()[-1]}" for i, err in failed)
        if self.cfg.on_error == "raise":
            raise EvalFailedError(f"inference eval at step {step} failed on {message}\n{failed[0][1]}")
        if not is_leader:
            return None
        record = {"step": step, "failed_ranks": [i for i, _ in failed],
                  "errors": {str(i): err for i, err in failed}}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "errors.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"warning: inference eval at step {step} failed ({message}); training continues. "
              f"Traceback in {self.output_dir / 'errors.jsonl'}", flush=True)
        return {PREFIX + "failed": 1.0}
