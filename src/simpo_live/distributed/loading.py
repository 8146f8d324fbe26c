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
from simpo_live.model.lora import Adapters, add_adapters, base_name, is_adapter, set_adapters, set_base_dtype


def load_for_training(directory: str | Path, strategy: str, rank: RankInfo, device: torch.device, dtype: str,
                      activation_checkpointing: bool, adapters: Adapters | None = None
                      ) -> tuple[LlamaModel, torch.nn.Module]:
    """(the plain module, what training calls) with the weights of `directory` (a model or a checkpoint).

    `dtype` is `model.dtype`: the dtype of the weights the optimizer updates, except under FSDP2 where
    'bfloat16' keeps fp32 shards (and fp32 optimizer state) and computes and all-gathers in bf16.
    With `adapters` (LoRA) the weights of `directory` are the frozen base, in `dtype` under either strategy, and
    only the adapters (fp32) train.
    """
    if uses_fsdp(strategy):
        model = load_sharded(directory, rank, device, bf16_compute=dtype == "bfloat16",
                             activation_checkpointing=activation_checkpointing, adapters=adapters,
                             base_dtype=DTYPES[dtype])
        return model, model
    raw_model = load_model(directory, dtype=DTYPES[dtype], device=device)
    if adapters is not None:
        add_adapters(raw_model, adapters.config)
        set_adapters(raw_model, adapters.weights)
    raw_model.set_activation_checkpointing(activation_checkpointing)
    return raw_model, wrap_with_ddp(raw_model, rank, device)


def load_sharded(directory: str | Path, rank: RankInfo, device: torch.device, bf16_compute: bool,
                 activation_checkpointing: bool, adapters: Adapters | None = None,
                 base_dtype: torch.dtype = torch.float32) -> LlamaModel:
    """An FSDP2-sharded fp32 model holding the weights of `directory`, each rank allocating only its shards.

    With `adapters` the frozen base is sharded too, in `base_dtype` (no fp32 master copy: it is never updated),
    and the adapters (fp32) are sharded from their whole weights.
    """
    args = read_model_args(directory)
    with torch.device("meta"):
        model = LlamaModel(args)
    if adapters is not None:
        add_adapters(model, adapters.config)
        set_base_dtype(model, base_dtype)
    model.set_activation_checkpointing(activation_checkpointing)
    check_stored_shapes(directory, {name: tuple(t.shape) for name, t in stored_tensors(model).items()})
    shard_with_fsdp(model, rank, device, bf16_compute=bf16_compute)
    model.to_empty(device=device)  # this rank's shards only, uninitialised until read below
    model.reset_rope_buffers()
    read_own_shards(model, directory)
    if adapters is not None:
        set_sharded_adapters(model, adapters.weights)
    return model


def stored_tensors(model: LlamaModel) -> dict[str, torch.Tensor]:
    """The model's base weights by checkpoint name (`base_name`: a LoRA-wrapped projection's weight under its HF
    name); adapters and a tied lm_head are not checkpoint tensors."""
    return {base_name(n): t for n, t in model.state_dict().items()
            if not is_adapter(n) and is_stored(model.args, base_name(n))}


def set_sharded_adapters(model: LlamaModel, weights: dict[str, torch.Tensor]) -> None:
    """Each rank keeps its shard of the whole adapter weights every rank holds (no collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, {n: t.float() for n, t in weights.items()},
                         options=StateDictOptions(full_state_dict=True, strict=False))


def read_own_shards(model: LlamaModel, directory: str | Path) -> None:
    """Each rank reads only the slices of the safetensors files its shards own, cast into the shards' dtype
    (torch.distributed.checkpoint with its Hugging Face reader plans the reads; nothing is broadcast).

    One load per decoder layer (or other tensor): the reader maps the files while it reads, and the pages it
    touched stay resident until it closes them, so a group at a time bounds them to one layer's slices.
    """
    import torch.distributed.checkpoint as dcp

    state = stored_tensors(model)
    for names in weight_groups(set(state)):
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
