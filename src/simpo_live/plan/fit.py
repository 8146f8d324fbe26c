"""Totals of a memory plan per phase, the fit check against the device, and the knobs that would make it fit.

A training step and an eval never overlap: gradients and activations are gone while the eval's replica and
KV cache exist, so the peak is the larger phase (terms in 'both' count in each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from simpo_live.config.load import ConfigError
from simpo_live.model.logprobs import auto_chunk_tokens
from simpo_live.plan.terms import PlanInputs, plan_terms

GIB = 2**30


@dataclass(frozen=True)
class MemoryPlan:
    inputs: PlanInputs
    terms: list[tuple[str, str, int]]  # (term, phase, bytes per rank)
    device_bytes: int  # memory one rank may use

    @classmethod
    def of(cls, inputs: PlanInputs, device_bytes: int) -> MemoryPlan:
        return cls(inputs, plan_terms(inputs, device_bytes), device_bytes)

    def phase_bytes(self, phase: str) -> int:
        return sum(b for _, p, b in self.terms if p in (phase, "both"))

    @property
    def peak_bytes(self) -> int:
        return max(self.phase_bytes("train"), self.phase_bytes("eval"))

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.device_bytes


# (override a user would pass, the same change on PlanInputs); tried one at a time when a plan does not fit.
Knob = tuple[str, Callable[[PlanInputs], PlanInputs | None]]


def _halve_micro_batch(p: PlanInputs) -> PlanInputs | None:
    if p.rows <= 2:
        return None
    scale = (p.rows // 2) / p.rows
    return p.with_knob(rows=p.rows // 2, response_tokens=max(1, int(p.response_tokens * scale)))


KNOBS: list[Knob] = [
    ("--trainer.activation_checkpointing=true",
     lambda p: None if p.activation_checkpointing else p.with_knob(activation_checkpointing=True)),
    ("--trainer.logprob_chunk_tokens=auto",
     lambda p: None if p.logprob_chunk_tokens else p.with_knob(
         logprob_chunk_tokens=auto_chunk_tokens(p.args.vocab_size))),
    ("--trainer.micro_batch_size=<half>", _halve_micro_batch),
    ("--trainer.strategy=fsdp", lambda p: None if p.sharded or p.world_size == 1 else p.with_knob(sharded=True)),
    ("--model.dtype=bfloat16", lambda p: None if p.param_bytes == 2 or (p.sharded and not p.lora_rank)
     else p.with_knob(param_bytes=2, compute_bytes=2, autocast=False, eval_replica_bytes=2 if p.lora_rank else 0)),
    ("--inference_eval.dtype=bfloat16", lambda p: None if p.kv_dtype == torch.bfloat16 or not p.kv_cache_tokens
     else p.with_knob(kv_dtype=torch.bfloat16, eval_replica_bytes=2 if p.eval_replica_bytes else 0)),
]


def fitting_knobs(plan: MemoryPlan) -> list[tuple[str, int]]:
    """Each single knob change that lowers the peak, with the peak it gives, fitting ones first."""
    found = []
    for override, change in KNOBS:
        changed = change(plan.inputs)
        if changed is not None:
            peak = MemoryPlan.of(changed, plan.device_bytes).peak_bytes
            if peak < plan.peak_bytes:
                found.append((override, peak))
    return sorted(found, key=lambda item: (item[1] > plan.device_bytes, item[1]))


def knobs_that_fit_together(plan: MemoryPlan) -> list[str] | None:
    """Knobs applied greedily (the one lowering the peak most, then the next) until the plan fits; None if the
    knobs run out first."""
    chosen, current = [], plan
    while not current.fits:
        candidates = [(MemoryPlan.of(changed, plan.device_bytes), override) for override, change in KNOBS
                      if (changed := change(current.inputs)) is not None]
        better = [(p.peak_bytes, override, p) for p, override in candidates if p.peak_bytes < current.peak_bytes]
        if not better:
            return None
        _, override, current = min(better, key=lambda item: item[0])
        chosen.append(override)
    return chosen


def format_plan(plan: MemoryPlan) -> str:
    lines = [f"memory plan per rank ({plan.inputs.world_size} rank(s), "
             f"{plan.inputs.rows} rows x {plan.inputs.seq_len} tokens, {plan.inputs.response_tokens} scored):"]
    for name, phase, num_bytes in plan.terms:
        lines.append(f"  {name:<34} {phase:<5} {num_bytes / GIB:9.3f} GiB")
    lines.append(f"  {'train step total':<40} {plan.phase_bytes('train') / GIB:9.3f} GiB")
    lines.append(f"  {'eval total':<40} {plan.phase_bytes('eval') / GIB:9.3f} GiB")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"  peak {plan.peak_bytes / GIB:.3f} GiB of {plan.device_bytes / GIB:.3f} GiB device memory: "
                 f"{verdict}")
    return "\n".join(lines)


def format_plan_summary(plan: MemoryPlan, device: torch.device) -> str:
    """One line: the peak per rank, the device and whether it fits (`format_plan` has every term)."""
    phase = "train step" if plan.phase_bytes("train") >= plan.phase_bytes("eval") else "eval"
    ranks = plan.inputs.world_size
    return (f"memory plan: peak {plan.peak_bytes / GIB:.3f} GiB per rank ({phase}) of {plan.device_bytes / GIB:.3f} "
            f"GiB on {device.type}, {ranks} rank{'s' if ranks > 1 else ''}: {'fits' if plan.fits else 'DOES NOT FIT'} "
            "(every term: train --verbose, or simpo-live plan)")


def format_plan_report(plan: MemoryPlan, device: torch.device, verbose: bool = False) -> str:
    """What `train` prints before step 1: the summary line, or every term when asked or when it does not fit."""
    return format_plan(plan) if verbose or not plan.fits else format_plan_summary(plan, device)


def check_fits(plan: MemoryPlan) -> None:
    """Raise ConfigError naming the knobs that would make the run fit (or help most) when it does not."""
    if plan.fits:
        return
    raise ConfigError([f"memory plan: the peak per rank is {plan.peak_bytes / GIB:.2f} GiB but the device has "
                       f"{plan.device_bytes / GIB:.2f} GiB; {advice(plan)}"])


def advice(plan: MemoryPlan) -> str:
    """The single knobs that fit (or help), then a combination that fits, or what is left to change."""
    knobs = fitting_knobs(plan)
    singles = ", ".join(f"{o} (peak {b / GIB:.2f} GiB{'' if b <= plan.device_bytes else ', still over'})"
                        for o, b in knobs)
    together = knobs_that_fit_together(plan)
    combined = (f"together: {' '.join(together)}" if together else
                "no combination of these knobs fits: use more ranks with --trainer.strategy=fsdp, or a smaller model")
    text = f"try {singles}; {combined}" if singles else combined
    reward = sum(b for name, _, b in plan.terms if name == "reward model")
    if reward and plan.phase_bytes("eval") > plan.device_bytes >= plan.phase_bytes("eval") - reward:
        text += (f"; the reward model alone needs {reward / GIB:.2f} GiB (weights and one scoring batch): lower "
                 "inference_eval.reward_batch_tokens or set inference_eval.reward_model_dtype: bfloat16")
    return text
