"""Build the training model from a Hugging Face directory without a full copy per rank, and wrap it.

Under FSDP2 the model is built on the meta device and sharded there; each rank allocates only its shards and
reads from the safetensors files only the slices those shards own (torch.distributed.checkpoint's Hugging Face
reader), so no rank ever holds a full tensor it does not train, and nothing is broadcast. Under DDP and in one
process every rank needs the whole model anyway: it is loaded directly in the trained dtype. Checkpoint parsing (names, shapes,
files) stays in `model/checkpoint.py`; this module only decides who reads what.
"""

from __future__ import annotations

from pathlib import Path

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.parallel import shard_with_fsdp, uses_fsdp, wrap_with_ddp
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import (
    DTYPES,
    CheckpointError,
    check_stored_shapes,
    is_stored,
    load_model,
    read_model_args,
)


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
    return raw_model, wrap_with_ddp(raw_model, rank, device)


def load_sharded(directory: str | Path, rank: RankInfo, device: torch.device, bf16_compute: bool,
                 activation_checkpointing: bool) -> LlamaModel:
    """An FSDP2-sharded fp32 model holding the weights of `directory`, each rank allocating only its shards."""
    args = read_model_args(directory)
    with torch.device("meta"):
        model = LlamaModel(args)
    model.set_activation_checkpointing(activation_checkpointing)
    stored_names = checkpoint_names(model)
    expected_shapes = {name: tuple(t.shape) for name, t in model.state_dict().items() if name in stored_names}
    check_stored_shapes(directory, expected_shapes)
    shard_with_fsdp(model, rank, device, bf16_compute=bf16_compute)
    model.to_empty(device=device)  # this rank's shards only, uninitialised until read below
    model.reset_rope_buffers()
    read_own_shards(model, directory)
    return model


def checkpoint_names(model: LlamaModel) -> set[str]:
    return {n for n in model.state_dict() if is_stored(model.args, n)}


def read_own_shards(model: LlamaModel, directory: str | Path) -> None:
    """Each rank reads only the slices of the safetensors files its shards own, cast into the shards' dtype
    (torch.distributed.checkpoint with its Hugging Face reader plans the reads; nothing is broadcast).

    One load per decoder layer (or other tensor): the reader maps the files while it reads, and the pages it
    touched stay resident until it closes them, so a group at a time bounds them to one layer's slices.
    """
    import torch.distributed.checkpoint as dcp

    state = model.state_dict()
    for names in weight_groups(checkpoint_names(model)):
        try:
            dcp.load({name: state[name] for name in names},
                     storage_reader=dcp.HuggingFaceStorageReader(str(directory)))
        except dcp.api.CheckpointException as e:  # raised on every rank when any rank's read failed
            raise CheckpointError(f"{directory}: a safetensors file could not be read ({first_failure(e)})") from e


def weight_groups(names: set[str]) -> list[list[str]]:
    """Checkpoint tensor names in load units: a decoder layer, or one other tensor (embeddings, norm, head)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[:2] == ["model", "layers"] else name
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def first_failure(error: Exception) -> str:
    failures = getattr(error, "failures", {})
    return str(next(iter(failures.values()))) if failures else str(error)
