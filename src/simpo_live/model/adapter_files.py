"""peft's adapter directory in and out: `adapter_model.safetensors` + `adapter_config.json`, the files
`peft.PeftModel.from_pretrained` loads onto the transformers model of the same base checkpoint.

Keys in the file are PeftModel's: `base_model.model.` + the transformers name (which is ours) without the adapter
name, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. Which tensors and where they live is
the caller's business; this module only names, writes, reads and checks them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from simpo_live.model.checkpoint import ADAPTER_CONFIG, CheckpointError, load_state_dict
from simpo_live.model.lora import ADAPTER

if TYPE_CHECKING:
    import peft

ADAPTER_WEIGHTS = "adapter_model.safetensors"
FILE_PREFIX = "base_model.model."  # what PeftModel puts before the wrapped transformers model's names
_ADAPTER_PART = re.compile(r"\.(lora_[AB])\.")


def file_key(name: str) -> str:
    """Our adapter parameter name -> its key in adapter_model.safetensors."""
    return FILE_PREFIX + name.replace(f".{ADAPTER}.", ".", 1)


def model_key(key: str) -> str:
    """A key of adapter_model.safetensors -> our adapter parameter name (the inverse of file_key)."""
    return _ADAPTER_PART.sub(rf".\1.{ADAPTER}.", key.removeprefix(FILE_PREFIX), count=1)


def is_adapter_dir(directory: str | Path) -> bool:
    return (Path(directory) / ADAPTER_CONFIG).is_file()


def save_adapters(directory: str | Path, adapters: dict[str, torch.Tensor], config: peft.LoraConfig) -> None:
    """Write both files into `directory` (the caller makes it atomic); tensors as given (fp32 when trained)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {file_key(name): t.detach().to("cpu").contiguous() for name, t in adapters.items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (directory / ADAPTER_WEIGHTS).chmod(0o644)  # safetensors creates it 0600, unlike the files beside it
    config.save_pretrained(str(directory))


def read_adapter_config(directory: str | Path) -> peft.LoraConfig:
    import peft

    path = Path(directory) / ADAPTER_CONFIG
    try:
        config = peft.PeftConfig.from_pretrained(str(directory))
    except Exception as e:  # peft raises several types for a missing, damaged or foreign file
        raise CheckpointError(f"{path}: cannot be read as a peft adapter config ({type(e).__name__}: {e})") from e
    if not isinstance(config, peft.LoraConfig):
        raise CheckpointError(f"{path}: a {type(config).__name__}, not a LoRA adapter")
    return config


def load_adapters(directory: str | Path, names: list[str]) -> dict[str, torch.Tensor]:
    """The named adapter weights (our names) from adapter_model.safetensors, as stored."""
    stored = load_state_dict(Path(directory), [file_key(name) for name in names], ADAPTER_WEIGHTS)
    return {model_key(key): tensor for key, tensor in stored.items()}
