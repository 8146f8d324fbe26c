"""Build the training model from a Hugging Face directory without a full copy per rank, and wrap it.

Under FSDP2 the model is built on the meta device and sharded there; each rank allocates only its shards, and
rank 0 reads the checkpoint a decoder layer at a time and broadcasts it with `set_model_state_dict`
(full state dict, `broadcast_from_rank0`), which copies each rank's slice into its shard. So no rank holds more
than one layer (or the embeddings) of the full model beyond its shards. Under DDP and in one process every rank
needs the whole model anyway: it is loaded directly in the trained dtype. Checkpoint parsing (names, shapes,
files) stays in `model/checkpoint.py`; this module only decides who reads what.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.parallel import shard_with_fsdp, uses_fsdp, wrap_for_training
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import DTYPES, CheckpointError, load_model, load_state_dict, read_model_args


def load_for_training(directory: str | Path, strategy: str, rank: RankInfo, device: torch.device, dtype: str,
                      activation_checkpointing: bool) -> tuple[LlamaModel, torch.nn.Module]:
    """(the plain module, what training calls) with the weights of `directory` (a model or a checkpoint).

    `dtype` is `model.dtype`: the dtype of the weights the optimizer updates, except under FSDP2 where
    'bfloat16' keeps fp32 shards (and fp32 optimizer state) and computes and all-gathers in bf16.
    """
    if uses_fsdp(strategy):
        model = load_sharded(directory, rank, device, bf16_compute=dtype == "bfloat16",
                             activation_checkpointing=activation_checkpointing)
        return model, model
    raw_model = load_model(directory, dtype=DTYPES[dtype], device=device)
    raw_model.set_activation_checkpointing(activation_checkpointing)
    return raw_model, wrap_for_training(raw_model, strategy, rank, device)


def load_sharded(directory: str | Path, rank: RankInfo, device: torch.device, bf16_compute: bool,
                 activation_checkpointing: bool) -> LlamaModel:
    """An FSDP2-sharded fp32 model holding the weights of `directory`, each rank allocating only its shards."""
    args = read_model_args(directory)
    with torch.device("meta"):
        model = LlamaModel(args)
    model.set_activation_checkpointing(activation_checkpointing)
    expected_shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    shard_with_fsdp(model, rank, device, bf16_compute=bf16_compute)
    model.to_empty(device=device)  # this rank's shards only, uninitialised until the broadcast below
    model.reset_rope_buffers()
    for names in weight_groups(model):
        broadcast_weights(model, directory, names, expected_shapes, rank)
    return model


def weight_groups(model: LlamaModel) -> list[list[str]]:
    """Checkpoint tensor names in read-and-broadcast units: a decoder layer, or one other tensor (embeddings,
    final norm, head: each may be as large as a layer).

    A tied lm_head is not a checkpoint tensor: it is the embedding, loaded with it.
    """
    tied = model.args.tie_word_embeddings
    names = [n for n in model.state_dict() if not (tied and n == "lm_head.weight")]
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[:2] == ["model", "layers"] else name
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def broadcast_weights(model: LlamaModel, directory: str | Path, names: list[str],
                      expected_shapes: dict[str, torch.Size], rank: RankInfo) -> None:
    """Rank 0 reads `names` (in their stored dtype); every rank keeps its slice, cast to its shard's dtype."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    weights = load_state_dict(directory, names) if rank.is_leader else {}
    # Every rank must fail on a bad tensor, not only the reader: the others would wait in the broadcast.
    error = [shape_error(directory, weights, expected_shapes)]
    dist.broadcast_object_list(error, src=0)
    if error[0] is not None:
        raise CheckpointError(error[0])
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    set_model_state_dict(model, weights, options=options)


def shape_error(directory: str | Path, weights: dict[str, torch.Tensor],
                expected_shapes: dict[str, torch.Size]) -> str | None:
    for name, tensor in weights.items():
        if tensor.shape != expected_shapes[name]:
            return (f"{directory}: tensor {name} has shape {tuple(tensor.shape)}, config.json implies "
                    f"{tuple(expected_shapes[name])}")
    return None
