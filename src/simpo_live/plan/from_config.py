"""Plan inputs from a config (and, in a live session, the tokenized data and the device), and the device's budget.

Without data (the `plan` command) the longest micro-batch is bounded by data.max_seq_len; in the pre-flight it is
the longest pair of the data, or of what an on-policy round can make. The eval phase covers on-policy rounds
too: each term is the larger of the eval's and the rounds' (replica, KV cache, reward model). The eval terms assume every sequence of the eval decodes at once (inference_eval
max_seqs, or max_pages when set): the engine sizes its own cache from free memory, so this is what it needs.
"""

from __future__ import annotations

import torch

from simpo_live.config import SimpoConfig
from simpo_live.data import TokenizedPair
from simpo_live.distributed.env import rank_info
from simpo_live.engine.capacity import free_memory_bytes
from simpo_live.intmath import round_up
from simpo_live.model.args import ModelArgs
from simpo_live.model.checkpoint import DTYPES
from simpo_live.model.logprobs import resolve_chunk_tokens
from simpo_live.plan.fit import MemoryPlan
from simpo_live.plan.terms import PlanInputs
from simpo_live.rollout.context import replica_dtype
from simpo_live.rollout.spec import engine_config

DTYPE_BYTES = {name: dtype.itemsize for name, dtype in DTYPES.items()}


# Tokens the chat template adds around a generated answer (end of turn and the like): an on-policy pair's
# response is at most onpolicy.max_new_tokens plus these.
TEMPLATE_RESPONSE_MARGIN = 8


def longest_micro_batch(cfg: SimpoConfig, pairs: list[TokenizedPair] | None) -> tuple[int, int]:
    """(padded row length, scored positions per row) of the worst micro-batch: every row as long as the longest,
    of the data's pairs or of the pairs an on-policy round can make."""
    if not pairs:
        return cfg.data.max_seq_len, cfg.data.max_seq_len - 1
    seq_len = max(len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs)
    response = max(max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs)
    if cfg.onpolicy.enabled:  # a round's pairs are tokenised under the same limits as the data's
        round_response = min(cfg.data.max_seq_len - 1, cfg.onpolicy.max_new_tokens + TEMPLATE_RESPONSE_MARGIN)
        response = max(response, round_response)
        seq_len = max(seq_len, min(cfg.data.max_seq_len, cfg.data.max_prompt_len + round_response))
    return seq_len, response


def generation_phase(dtype: str, max_new_tokens: int, page_size: int, max_pages: int | None, max_seqs: int,
                     hbm_utilization: float, cfg: SimpoConfig, args: ModelArgs, device_type: str, sharded: bool,
                     param_bytes: int) -> dict:
    """The replica and KV-cache inputs of one engine run (an eval or an on-policy round)."""
    engine_dtype = replica_dtype(dtype, torch.device(device_type))  # None: the training weights as they are
    engine_bytes = engine_dtype.itemsize if engine_dtype is not None else param_bytes
    # A LoRA run's engine always gets a replica with the adapters merged into it (distributed/parallel.py).
    separate = sharded or engine_bytes != param_bytes or cfg.lora.enabled
    replica = engine_bytes if separate else 0
    request = round_up(min(args.max_position_embeddings, cfg.data.max_prompt_len + max_new_tokens), page_size)
    fixed = max_pages is not None
    return {"eval_replica_bytes": replica, "kv_dtype": torch.bfloat16 if engine_bytes == 2 else torch.float32,
            "kv_cache_tokens": max_pages * page_size if fixed else max_seqs * request,
            "kv_min_tokens": request, "kv_fraction": None if fixed else hbm_utilization}


def eval_terms(cfg: SimpoConfig, args: ModelArgs, device_type: str, sharded: bool, param_bytes: int,
               world_size: int) -> dict:
    """The eval phase's inputs: the inference eval's engine, or the on-policy rounds' where larger (term by term,
    an upper bound of either: the two never run at once)."""
    ev, op = cfg.inference_eval, cfg.onpolicy
    common = dict(cfg=cfg, args=args, device_type=device_type, sharded=sharded, param_bytes=param_bytes)
    phases = []
    if ev.enabled:
        phases.append(generation_phase(ev.dtype, ev.max_new_tokens, ev.page_size, ev.max_pages, ev.max_seqs,
                                       ev.hbm_utilization, **common))
    if op.enabled:
        engine = engine_config(op, cfg.data.max_seq_len)
        phases.append(generation_phase(op.dtype, op.max_new_tokens, engine.page_size, None, op.max_seqs,
                                       op.hbm_utilization, **common))
    if len(phases) <= 1:
        return phases[0] if phases else {}
    fractions = [p["kv_fraction"] for p in phases if p["kv_fraction"] is not None]
    return {"eval_replica_bytes": max(p["eval_replica_bytes"] for p in phases),
            "kv_dtype": max((p["kv_dtype"] for p in phases), key=lambda dtype: dtype.itemsize),
            "kv_cache_tokens": max(p["kv_cache_tokens"] for p in phases),
            "kv_min_tokens": max(p["kv_min_tokens"] for p in phases),
            "kv_fraction": max(fractions) if fractions else None}


def eval_reward_model_bytes(cfg: SimpoConfig, device_type: str) -> int:
    """The larger of the eval's and the on-policy rounds' reward model, in its scoring dtype plus one scoring
    batch; 0 without one. It is loaded once the engine and the replica are gone, so counting it beside them in
    the eval phase is an upper bound."""
    from simpo_live.rollout.reward import inspect_reward_model, reward_dtype, reward_model_bytes

    sections = {"inference_eval": cfg.inference_eval, "onpolicy": cfg.onpolicy}
    return max((reward_model_bytes(inspect_reward_model(s.reward_model, key=f"{name}.reward_model"),
                                   reward_dtype(s.reward_model_dtype, torch.device(device_type)),
                                   s.reward_batch_tokens)
                for name, s in sections.items() if s.enabled and s.reward_model), default=0)


def plan_inputs(cfg: SimpoConfig, args: ModelArgs, world_size: int, device_type: str,
                pairs: list[TokenizedPair] | None = None, reward_model_bytes: int | None = None) -> PlanInputs:
    """`reward_model_bytes` None: read from inference_eval.reward_model."""
    tr = cfg.trainer
    if reward_model_bytes is None:
        reward_model_bytes = eval_reward_model_bytes(cfg, device_type)
    sharded = tr.strategy == "fsdp" and world_size > 1
    fsdp_bf16 = sharded and (cfg.model.dtype == "bfloat16" or device_type == "cuda")
    # FSDP keeps fp32 shards of trained weights; a frozen LoRA base stays in model.dtype.
    param_bytes = 4 if sharded and not cfg.lora.enabled else DTYPE_BYTES[cfg.model.dtype]
    autocast = tr.precision == "bf16" or (tr.precision == "auto" and device_type == "cuda")
    compute_bytes = 2 if (autocast or fsdp_bf16 or param_bytes == 2) else 4
    micro = min(tr.micro_batch_size, max(1, tr.train_batch_size // world_size))
    seq_len, response_per_row = longest_micro_batch(cfg, pairs)
    return PlanInputs(
        args=args, world_size=world_size, sharded=sharded, param_bytes=param_bytes, compute_bytes=compute_bytes,
        autocast=autocast and param_bytes == 4 and not fsdp_bf16, rows=2 * micro, seq_len=seq_len,
        response_tokens=2 * micro * response_per_row,
        logprob_chunk_tokens=resolve_chunk_tokens(tr.logprob_chunk_tokens, args.vocab_size),
        activation_checkpointing=tr.activation_checkpointing, reward_model_bytes=reward_model_bytes,
        lora_rank=cfg.lora.rank or 0, lora_targets=tuple(cfg.lora.target_modules) if cfg.lora.enabled else (),
        lora_dropout=cfg.lora.enabled and cfg.lora.dropout > 0, lora_copy_bytes=2 if autocast else 4,
        **eval_terms(cfg, args, device_type, sharded, param_bytes, world_size),
    )


def device_budget_bytes(device: torch.device, own_bytes: int = 0) -> int:
    """What one rank may use: the GPU's free memory, or this host's available RAM shared by its ranks, plus
    `own_bytes` this process already holds (the plan counts the loaded model among its terms)."""
    if device.type == "cuda":
        return free_memory_bytes(device) + own_bytes
    return free_memory_bytes(device) // rank_info().local_world_size + own_bytes


def plan_for_config(cfg: SimpoConfig, args: ModelArgs, world_size: int, device: torch.device,
                    device_bytes: int | None = None, pairs: list[TokenizedPair] | None = None,
                    reward_model_bytes: int | None = None, own_bytes: int = 0) -> MemoryPlan:
    inputs = plan_inputs(cfg, args, world_size, device.type, pairs, reward_model_bytes)
    budget = device_bytes if device_bytes is not None else device_budget_bytes(device, own_bytes)
    return MemoryPlan.of(inputs, budget)
