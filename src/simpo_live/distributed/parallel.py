"""Wrap the model for the training strategy (DDP or FSDP2), and give the engine a full replica of it.

Under DDP every rank already holds the whole module, which the engine uses as is (no copy). Under FSDP2
each rank holds a shard, so for an eval every rank gathers a full replica and frees it afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.model import LlamaModel


def wrap_for_training(model: LlamaModel, strategy: str, rank: RankInfo, device: torch.device) -> torch.nn.Module:
    """DDP or FSDP2 under torchrun; the plain module in one process (FSDP2 also on one torchrun rank)."""
    import torch.distributed as dist

    if strategy == "fsdp" and dist.is_initialized():
        return shard_with_fsdp(model, rank, device)
    if not rank.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shard_with_fsdp(model: LlamaModel, rank: RankInfo, device: torch.device) -> LlamaModel:
    """FSDP2 `fully_shard` per decoder layer, then the root (embeddings, norm, head; tied weights stay together)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (rank.world_size,))
    policy = MixedPrecisionPolicy()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        # bf16 compute and all-gathers, fp32 gradient reduction: the usual large-model recipe.
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def full_state_dict(model: torch.nn.Module, *, leader_only: bool) -> dict[str, torch.Tensor]:
    """The unsharded state dict with the plain module's names (a collective under FSDP: every rank must call it)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # DDP's own state_dict prefixes every name with "module."
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=leader_only)
    return get_model_state_dict(model, options=options)


@contextlib.contextmanager
def inference_replica(model: LlamaModel, dtype: torch.dtype | None = None) -> Iterator[LlamaModel]:
    """A full, plain replica of `model` for the engine, in `dtype` (None: the training dtype).

    The module itself when it is whole and already in `dtype` (DDP, one process: no copy). Otherwise (FSDP
    shards, or a bf16 copy of fp32 training weights for faster decoding) it is built, and freed on exit.
    """
    same_dtype = dtype is None or dtype == next(model.parameters()).dtype
    if not is_sharded(model) and same_dtype:
        yield model
        return
    state = full_state_dict(model, leader_only=False)
    device = next(iter(state.values())).device
    with torch.device("meta"):
        replica = LlamaModel(model.args)
    replica.load_state_dict({k: v.detach().to(dtype) if dtype else v for k, v in state.items()},
                            strict=False, assign=True)
    if model.args.tie_word_embeddings:
        replica.lm_head.weight = replica.model.embed_tokens.weight
    replica.reset_rope_buffers()
    replica.to(device)
    del state
    try:
        yield replica.eval()
    finally:
        del replica
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
