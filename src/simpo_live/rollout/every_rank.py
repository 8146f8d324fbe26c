"""One rollout on every rank: reuse this host's finished file or generate its slice (replica, engine), score it,
write the host file, then gather every host's result to the leader with failures as data, so one rank's error
becomes one error naming every failed rank instead of a hang. The eval and the on-policy rounds differ only in
what they make of the scored rows (`HostWork`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from simpo_live.distributed.gather import broadcast_from_leader, gather_to_leader
from simpo_live.distributed.parallel import inference_replica
from simpo_live.engine import Engine
from simpo_live.rollout.context import RolloutContext
from simpo_live.rollout.generation import generate_shard
from simpo_live.rollout.host_files import is_host_done, write_host_file
from simpo_live.rollout.isolation import generate_in_subprocess
from simpo_live.rollout.probe import probe_weight_handoff
from simpo_live.rollout.progress import GenerationProgress
from simpo_live.rollout.rows import GenerationRow
from simpo_live.rollout.spec import RolloutSpec

T = TypeVar("T")


class RolloutFailedError(RuntimeError):
    """A rollout failed on one or more ranks."""


@dataclass
class Generated:
    """One host's scored rows and where the time went (zero for a phase that did not run)."""

    rows: list[GenerationRow]
    engine_creation_time_sec: float = 0.0
    generation_time_sec: float = 0.0
    scoring_time_sec: float = 0.0
    probe: dict[str, float] | None = None


@dataclass
class HostOutput(Generic[T]):
    """What one host writes (its host file's rows in their JSON form, and a sidecar written before them) and sends
    to the leader."""

    rows: list[dict[str, Any]]
    value: T
    sidecar: dict[str, Any] | None = None


@dataclass(frozen=True)
class HostWork(Generic[T]):
    """What a rollout makes of one host's work: `finish(generated)` from freshly scored rows, `reuse(rank)` from
    the host file a killed run finished (read back the same way a fresh host reads its own)."""

    finish: Callable[[Generated], HostOutput[T]]
    reuse: Callable[[], T]


@dataclass
class RankResults(Generic[T]):
    """The gathered results: every host's value on the leader (None elsewhere), and (rank, traceback) of every
    failed rank on every rank."""

    values: list[T] | None
    failed: list[tuple[int, str]] = field(default_factory=list)


def failed_ranks(failed: list[tuple[int, str]]) -> str:
    """Every failed rank and the last line of its error, on one line."""
    return "; ".join(f"rank {i}: {err.strip().splitlines()[-1]}" for i, err in failed)


def failure_message(what: str, failed: list[tuple[int, str]]) -> str:
    """The one error of a failed rollout: every failed rank, then the first traceback."""
    return f"{what} failed on {failed_ranks(failed)}\n{failed[0][1]}"


def run_on_every_rank(ctx: RolloutContext, spec: RolloutSpec, prompts: list[str], prompt_slice: tuple[int, int],
                      directory: Path, work: HostWork[T], what: str, progress_label: str | None = None,
                      probe: bool = False) -> RankResults[T]:
    """Every rank calls this with its slice [start, end) of the global `prompts`; `what` names the rollout in
    errors ("inference eval at step 50"). `progress_label`: the leader shows generation progress under it;
    `probe`: the leader checks the engine's log-probs against the training model's."""
    rank = ctx.rank
    try:
        outcome: tuple[Any, str | None] = (run_host(ctx, spec, prompts, prompt_slice, directory, work,
                                                   progress_label, probe), None)
    except Exception:  # every rank must still reach the gather, so a failure travels as data
        outcome = (None, traceback.format_exc())
    outcomes = gather_to_leader(outcome, rank, spec.timeout_sec, what)
    failed = broadcast_from_leader([(i, error) for i, (_, error) in enumerate(outcomes or []) if error],
                                   rank, spec.timeout_sec)
    values = [value for value, _ in outcomes] if outcomes is not None else None
    return RankResults(values, failed)


def run_host(ctx: RolloutContext, spec: RolloutSpec, prompts: list[str], prompt_slice: tuple[int, int],
             directory: Path, work: HostWork[T], progress_label: str | None, probe: bool) -> T:
    rank = ctx.rank
    done = is_host_done(directory, rank.rank, rank.world_size)
    # Under FSDP gathering the replica is a collective, so every rank enters this, finished file or not.
    with inference_replica(ctx.model, spec.replica_dtype) as model:
        if not done:
            generated = generate(ctx, spec, model, prompts, prompt_slice, directory, progress_label, probe)
    if done:
        return work.reuse()
    # The replica and the engine are gone: the reward model takes their memory.
    began = time.perf_counter()
    generated.rows = spec.scoring.score(generated.rows, ctx.device)
    generated.scoring_time_sec = time.perf_counter() - began
    output = work.finish(generated)
    write_host_file(directory, output.rows, rank.rank, rank.world_size, sidecar=output.sidecar)
    return output.value


def generate(ctx: RolloutContext, spec: RolloutSpec, model, prompts: list[str], prompt_slice: tuple[int, int],
             directory: Path, progress_label: str | None, probe: bool) -> Generated:
    """Rows of global prompts [start, end), in this process or in a `simpo-live sample` child."""
    start, end = prompt_slice
    if end <= start:
        return Generated([])
    rank, began = ctx.rank, time.perf_counter()
    if spec.isolation == "subprocess":
        rows = generate_in_subprocess(model, ctx.tokenizer, prompts, prompt_slice, spec.settings, ctx.step, rank,
                                      directory / f"work_{rank.rank:04d}", spec.engine, spec.timeout_sec)
        # The child's rows name its model directory, a temporary copy: they carry the rollout's provenance instead.
        rows = [row.with_provenance(spec.provenance) for row in rows]
        return Generated(rows, generation_time_sec=time.perf_counter() - began)
    bar = leader_progress(ctx, progress_label, (end - start) * spec.settings.n)
    with Engine(model, ctx.tokenizer, spec.engine) as engine:
        generated = Generated([], engine_creation_time_sec=time.perf_counter() - began)
        began = time.perf_counter()
        generated.rows = generate_shard(engine, prompts[start:end], start, spec.settings, ctx.step, rank.rank,
                                        rank.world_size, spec.provenance, on_step=bar.update if bar else None)
        generated.generation_time_sec = time.perf_counter() - began
        if bar:
            bar.close()
        if probe and rank.is_leader:
            generated.probe = probe_weight_handoff(engine, model, prompts[0], spec.settings)
    return generated


def leader_progress(ctx: RolloutContext, label: str | None, num_samples: int) -> GenerationProgress | None:
    """Leader-only generation progress (samples, tokens/s); quiet on other ranks."""
    if label is None or not ctx.rank.is_leader or ctx.progress is None or not ctx.progress.enabled:
        return None
    return GenerationProgress(label, ctx.step, num_samples, ctx.progress)
