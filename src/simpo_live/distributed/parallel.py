"""Wrap the model for the training strategy (DDP or FSDP2), and give the engine a full replica of it.

Under DDP every rank already holds the whole module, which the engine uses as is (no copy). Under FSDP2
each rank holds a shard, so for an eval every rank gathers a full replica and frees it afterwards. A model with
LoRA adapters always gets a replica, with the adapters merged into it (never into the training weights).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import is_stored
from simpo_live.model.lora import adapter_config, base_name, has_adapters, is_adapter, is_merge_target, merged_model


def wrap_with_ddp(model: LlamaModel, rank: RankInfo, device: torch.device) -> torch.nn.Module:
    """DDP under torchrun, the plain module in one process. (FSDP2 shards at load time: `distributed.loading`.)"""
    if not rank.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def uses_fsdp(strategy: str) -> bool:
    """FSDP2 whenever asked for under torchrun, even on one rank (a process group is needed)."""
    import torch.distributed as dist

    return strategy == "fsdp" and dist.is_initialized()


def gathers_in_bf16(device: torch.device, bf16_compute: bool = False) -> bool:
    """Whether FSDP2 all-gathers and computes in bf16 on `device` (`shard_with_fsdp`'s mixed-precision rule)."""
    return bf16_compute or (device.type == "cuda" and torch.cuda.is_bf16_supported())


def shard_with_fsdp(model: LlamaModel, rank: RankInfo, device: torch.device, bf16_compute: bool = False) -> LlamaModel:
    """FSDP2 `fully_shard` per decoder layer, then the root (embeddings, norm, head; tied weights stay together).

    The shards keep the model's dtype (fp32: the optimizer state is fp32 too); with `bf16_compute`, or on a
    CUDA device with bf16, parameters are all-gathered and used in bf16 and gradients reduced in fp32.
    Works on a meta-device model too (then `to_empty` allocates just the shards).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (rank.world_size,))
    policy = MixedPrecisionPolicy()
    if gathers_in_bf16(device, bf16_compute):
        # bf16 compute and all-gathers, fp32 gradient reduction: the usual large-model recipe.
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """True when FSDP2 has turned the parameters into DTensor shards."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def gradient_sync(model: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Where gradient accumulation runs a backward: DDP all-reduces only when `enabled` (the update's last
    micro-batch); FSDP2 and a plain module reduce (or not) as they always do."""
    from torch.nn.parallel import DistributedDataParallel

    if enabled or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def whole_value(tensor: torch.Tensor) -> float:
    """A scalar that FSDP2 may hand back as a DTensor (e.g. clip_grad_norm_'s norm), as a Python float."""
    from torch.distributed.tensor import DTensor

    return float(tensor.full_tensor() if isinstance(tensor, DTensor) else tensor)


def plain_replica(args, state: dict[str, torch.Tensor], device: torch.device) -> LlamaModel:
    with torch.device("meta"):
        replica = LlamaModel(args)
    replica.load_state_dict(state, strict=False, assign=True)
    if args.tie_word_embeddings:
        replica.lm_head.weight = replica.model.embed_tokens.weight
    replica.reset_rope_buffers()
    return replica.to(device)


def full_state_dict(model: torch.nn.Module, *, leader_only: bool) -> dict[str, torch.Tensor]:
    """The unsharded state dict with the plain module's names (a collective under FSDP: every rank must call it)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # DDP's own state_dict prefixes every name with "module."
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=leader_only)
    return get_model_state_dict(model, options=options)


def full_adapter_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every LoRA adapter weight whole, where it lives (a collective under FSDP: every rank must call it)."""
    from torch.distributed.tensor import DTensor

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return {name: (t.full_tensor() if isinstance(t, DTensor) else t).detach()
            for name, t in model.state_dict().items() if is_adapter(name)}


def replica_state_dict(model: LlamaModel, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Every base weight whole and in `dtype` (None: as trained) by checkpoint name, one tensor at a time: a
    shard is cast before its all-gather, so under FSDP the full model only ever exists in the eval dtype (a
    collective: every rank calls it). A weight that a LoRA adapter will be merged into is always a copy."""
    from torch.distributed.tensor import DTensor

    state = {}
    for name, tensor in model.state_dict().items():
        if is_adapter(name) or not is_stored(model.args, base_name(name)):
            continue  # adapters (merged by the caller), the tied embedding (re-tied by the caller)
        tensor = tensor.detach()
        if dtype is not None or is_merge_target(name):
            tensor = tensor.to(dtype or tensor.dtype, copy=is_merge_target(name))
        state[base_name(name)] = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
    return state


@contextlib.contextmanager
def inference_replica(model: LlamaModel, dtype: torch.dtype | None = None) -> Iterator[LlamaModel]:
    """A full, plain replica of `model` for the engine, in `dtype` (None: the training dtype).

    The module itself when it is whole, already in `dtype` and has no adapters (DDP, one process: no copy).
    Otherwise (FSDP shards, a bf16 copy of fp32 training weights for faster decoding, or LoRA adapters to merge
    into their weights) it is built, and freed on exit.
    """
    same_dtype = dtype is None or dtype == next(model.parameters()).dtype
    if not is_sharded(model) and same_dtype and not has_adapters(model):
        yield model
        return
    state = replica_state_dict(model, dtype)
    device = next(iter(state.values())).device
    if has_adapters(model):
        replica = merged_model(model.args, state, full_adapter_weights(model), adapter_config(model))
    else:
        replica = plain_replica(model.args, state, device)
    del state
    try:
        yield replica.eval()
    finally:
        del replica
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
