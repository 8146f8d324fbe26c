"""A rollout's longest real request is checked against the memory plan (the one budget): a request within the
plan's bound passes untouched, a longer one re-plans the KV term in the engine's dtype and is refused, naming the
prompt and the knobs, when the run would no longer fit."""

import pytest
import torch

from simpo_live.config import ConfigError
from simpo_live.engine.capacity import kv_bytes_per_token
from simpo_live.plan import MemoryPlan
from simpo_live.plan.check import check_request_fits
from test_memory_plan import ARGS, plan_of


def kv_term(plan: MemoryPlan) -> int:
    return next(b for name, _, b in plan.terms if name == "KV cache")


def test_a_request_within_the_plans_bound_is_not_replanned():
    plan = plan_of("--inference_eval.enabled=true", "--inference_eval.max_new_tokens=16")
    check_request_fits(MemoryPlan.of(plan.inputs, device_bytes=1), plan.inputs.kv_min_tokens, 16, "prompt 0")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_longer_request_is_planned_in_the_engines_kv_dtype(dtype):
    plan = plan_of("--inference_eval.enabled=true", "--inference_eval.max_new_tokens=16",
                   f"--inference_eval.dtype={dtype}", "--inference_eval.max_seqs=1")
    element_bytes = {"float32": 4, "bfloat16": 2}[dtype]
    request = plan.inputs.kv_min_tokens + 100
    needed = MemoryPlan.of(plan.inputs.with_knob(kv_min_tokens=request + 12, kv_cache_tokens=request + 12),
                           plan.device_bytes)
    assert kv_term(needed) == (request + 12) * kv_bytes_per_token(ARGS, torch.float32) * element_bytes // 4
    check_request_fits(MemoryPlan.of(plan.inputs, needed.peak_bytes), request, 16, "prompt 3 (p.txt:4)")
    with pytest.raises(ConfigError, match=r"prompt 3 \(p.txt:4\) needs a KV cache of \d+ tokens.*try "):
        check_request_fits(MemoryPlan.of(plan.inputs, needed.peak_bytes - 1), request, 16, "prompt 3 (p.txt:4)")
