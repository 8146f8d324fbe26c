"""The memory plan as a pre-flight (before step 1, printed by the leader) and as the `simpo-live plan` command."""

from __future__ import annotations

import torch

from simpo_live.config import ConfigError, SimpoConfig
from simpo_live.data import TokenizedPair
from simpo_live.rollout.memory import process_rss_gib
from simpo_live.intmath import round_up
from simpo_live.model.args import ModelArgs
from simpo_live.model.checkpoint import read_model_args
from simpo_live.plan.fit import GIB, MemoryPlan, advice, check_fits, format_plan, format_plan_report
from simpo_live.plan.from_config import plan_for_config


def own_memory_bytes(device: torch.device) -> int:
    """What this process holds already (the loaded model): CUDA reserved memory, or the resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_reserved(device)
    rss = process_rss_gib()
    return int(rss * GIB) if rss is not None else 0


def check_memory_before_training(cfg: SimpoConfig, args: ModelArgs, world_size: int, device: torch.device,
                                 pairs: list[TokenizedPair], is_leader: bool,
                                 reward_model_bytes: int | None = None, verbose: bool = False) -> MemoryPlan:
    """Print the plan (leader: one summary line, or every term when `verbose` or when it does not fit) and raise
    ConfigError, naming the knobs that would fit, when it does not fit."""
    plan = plan_for_config(cfg, args, world_size, device, pairs=pairs, reward_model_bytes=reward_model_bytes,
                           own_bytes=own_memory_bytes(device))
    if is_leader:  # information, on stdout: stderr is for what went wrong
        print(format_plan_report(plan, device, verbose), flush=True)
    check_fits(plan)
    return plan


def check_request_fits(plan: MemoryPlan, request_tokens: int, page_size: int, which: str) -> None:
    """The plan again with a rollout's longest real request as the least KV cache it can run with (the plan
    before step 1 bounds prompts by data.max_prompt_len; a prompt file can hold longer ones). ConfigError naming
    the request and the knobs when the run would then not fit."""
    tokens = round_up(request_tokens, page_size)
    inputs = plan.inputs
    if tokens <= inputs.kv_min_tokens:
        return
    replanned = MemoryPlan.of(inputs.with_knob(kv_min_tokens=tokens,
                                               kv_cache_tokens=max(inputs.kv_cache_tokens, tokens)), plan.device_bytes)
    if not replanned.fits:
        raise ConfigError([f"{which} needs a KV cache of {tokens} tokens, beyond the memory plan's bound of "
                           f"{inputs.kv_min_tokens}: the run would need {replanned.peak_bytes / GIB:.2f} GiB per rank "
                           f"of {plan.device_bytes / GIB:.2f} GiB. {advice(replanned)}"])


def run_plan_command(cfg: SimpoConfig, world_size: int, device_type: str, device_memory_gib: float | None) -> int:
    """`simpo-live plan`: the plan of cfg's run (longest micro-batch bounded by data.max_seq_len); exit 1 if over."""
    args = read_model_args(cfg.model.path)
    device_bytes = int(device_memory_gib * GIB) if device_memory_gib is not None else None
    plan = plan_for_config(cfg, args, world_size, torch.device(device_type), device_bytes=device_bytes)
    print(format_plan(plan))
    if plan.fits:
        return 0
    print(f"  {advice(plan)}")
    return 1
