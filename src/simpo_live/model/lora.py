"""LoRA adapters on the one model through `peft`: inject them, name them, give them their first values, merge them.

peft does the adapter math (its LoRA layers, their initialisation and the merge); this module maps the `lora` config
and our parameter names onto it. No adapter math is written here, and it does not decide where weights live (the
loaders and the replica do). peft is an optional dependency, imported only when LoRA is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from simpo_live.model.args import ModelArgs
from simpo_live.model.checkpoint import is_stored
from simpo_live.model.llama import LlamaModel

if TYPE_CHECKING:
    import peft

    from simpo_live.config.schema import LoraConfig

ADAPTER = "default"  # peft's adapter name inside the model; its files leave it out


@dataclass(frozen=True)
class Adapters:
    """The adapters a training model gets: peft's config and whole weights (initial, or from a checkpoint)."""

    config: peft.LoraConfig
    weights: dict[str, torch.Tensor]  # our parameter names -> fp32 tensors


def is_adapter(name: str) -> bool:
    """Whether parameter `name` is an adapter weight (peft's lora_A / lora_B), not a base weight."""
    return ".lora_A." in name or ".lora_B." in name


def base_name(name: str) -> str:
    """The name of a base weight in a Hugging Face checkpoint: peft moves a wrapped projection's weight under
    `.base_layer.`; every other name is ours, which is HF's. One rule for every reader of base weights."""
    return name.replace(".base_layer.", ".")


def is_merge_target(name: str) -> bool:
    """Whether base weight `name` (as the model with adapters names it) receives an adapter's update."""
    return ".base_layer." in name


def has_adapters(model: torch.nn.Module) -> bool:
    """True for a model `add_adapters` has wrapped (peft records its config on the model)."""
    return hasattr(model, "peft_config")


def adapter_config(model: torch.nn.Module) -> peft.LoraConfig:
    return model.peft_config[ADAPTER]


def peft_config(lora: LoraConfig, base_model_path: str | None = None) -> peft.LoraConfig:
    """peft's LoraConfig for the `lora` section; `base_model_path` is recorded in adapter_config.json."""
    import peft

    return peft.LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                           target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
                           base_model_name_or_path=base_model_path)


def add_adapters(model: LlamaModel, config: peft.LoraConfig) -> None:
    """Wrap the targeted projections in peft LoRA layers (adapters on the meta device, so nothing is allocated
    or drawn from the RNG: their values are set by the caller) and freeze every base weight."""
    import peft

    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER, low_cpu_mem_usage=True)
    for name, param in model.named_parameters():
        param.requires_grad_(is_adapter(name))


def set_base_dtype(model: LlamaModel, dtype: torch.dtype) -> None:
    """Cast the frozen base weights to `dtype` (the model dtype); adapters keep theirs (fp32)."""
    for name, param in model.named_parameters():
        if not is_adapter(name):
            param.data = param.data.to(dtype)


def set_adapters(model: LlamaModel, weights: dict[str, torch.Tensor]) -> None:
    """Put whole adapter weights into a plain (unsharded) model's adapters, in fp32 on the base's device."""
    device = model.lm_head.weight.device
    missing = sorted(n for n, _ in model.named_parameters() if is_adapter(n) and n not in weights)
    if missing:
        raise ValueError(f"no weights for adapters {missing[:3]}")  # callers check files first: a bug if reached
    model.load_state_dict({n: t.to(device, torch.float32) for n, t in weights.items()}, strict=False, assign=True)


def lora_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


def initial_adapters(args: ModelArgs, config: peft.LoraConfig, seed: int) -> dict[str, torch.Tensor]:
    """peft's initial adapters (A kaiming-uniform, B zeros: the update starts at 0), fp32 on CPU, a function of
    `seed` alone: equal on every rank, under DDP and FSDP, whatever the global RNG has drawn."""
    with torch.device("meta"):
        model = LlamaModel(args)
    add_adapters(model, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in lora_layers(model):
            layer.lora_A[ADAPTER].to_empty(device="cpu")
            layer.lora_B[ADAPTER].to_empty(device="cpu")
            layer.reset_lora_parameters(ADAPTER, init_lora_weights=True)
    return {name: t.detach() for name, t in model.state_dict().items() if is_adapter(name)}


def adapter_shapes(args: ModelArgs, config: peft.LoraConfig) -> dict[str, tuple[int, ...]]:
    """Every adapter weight's shape for a model of `args` (built on the meta device: nothing is allocated)."""
    with torch.device("meta"):
        model = LlamaModel(args)
    add_adapters(model, config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items() if is_adapter(name)}


def merged_model(args: ModelArgs, base: dict[str, torch.Tensor], adapters: dict[str, torch.Tensor],
                 config: peft.LoraConfig) -> LlamaModel:
    """A plain model whose targeted weights are base + (alpha / rank) B @ A, merged by peft.

    `base` maps checkpoint names to whole weights, in the dtype the merged model should have; the targeted ones
    are updated in place, so they must be the caller's own copies. `adapters` (whole, our names) may be fp32.
    """
    import peft

    with torch.device("meta"):
        model = LlamaModel(args)
    tuner = peft.LoraModel(model, config, ADAPTER, low_cpu_mem_usage=True)
    device = next(iter(base.values())).device
    state = {name: base[base_name(name)] for name in model.state_dict()
             if not is_adapter(name) and is_stored(args, base_name(name))}
    state.update({name: tensor.to(device) for name, tensor in adapters.items()})
    model.load_state_dict(state, strict=False, assign=True)  # strict=False: a tied lm_head is not stored
    merged = tuner.merge_and_unload()
    if args.tie_word_embeddings:
        merged.lm_head.weight = merged.model.embed_tokens.weight
    merged.reset_rope_buffers()
    return merged.requires_grad_(False)
