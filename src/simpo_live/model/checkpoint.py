"""Load and save Hugging Face checkpoints (config.json + safetensors, single file or sharded) for our model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # config dtype names
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded, with the reason and the path."""


def read_model_args(directory: str | Path) -> ModelArgs:
    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: not found (expected a Hugging Face model directory)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from e
    return ModelArgs.from_hf_config(config, source=str(config_path))


def _tensor_files(directory: Path) -> dict[str, Path]:
    """Map each tensor name to the safetensors file holding it."""
    index_path = directory / INDEX_FILE
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text())["weight_map"]
        return {name: directory / file for name, file in weight_map.items()}
    single = directory / SINGLE_FILE
    if not single.is_file():
        raise CheckpointError(f"{directory}: neither {SINGLE_FILE} nor {INDEX_FILE} found")
    with safe_open(single, framework="pt") as f:
        return {name: single for name in f.keys()}


def load_state_dict(directory: str | Path, names: list[str]) -> dict[str, torch.Tensor]:
    """Read the named tensors; a missing one is an error naming it and the directory."""
    directory = Path(directory)
    files = _tensor_files(directory)
    missing = [n for n in names if n not in files]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{directory}: missing tensors {shown}")
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name], []).append(name)
    tensors = {}
    for file, file_names in by_file.items():
        with safe_open(file, framework="pt") as f:
            for name in file_names:
                tensors[name] = f.get_tensor(name)
    return tensors


def load_model(directory: str | Path, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> LlamaModel:
    """Build our model from a local HF directory, weights cast to `dtype` on `device`."""
    args = read_model_args(directory)
    with torch.device("meta"):
        model = LlamaModel(args)
    names = [n for n in model.state_dict() if not (args.tie_word_embeddings and n == "lm_head.weight")]
    state = load_state_dict(directory, names)
    for name, tensor in state.items():
        expected = model.state_dict()[name].shape
        if tensor.shape != expected:
            raise CheckpointError(f"{directory}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"config.json implies {tuple(expected)}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False, assign=True)
    if args.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.reset_rope_buffers()
    return model.to(device)


def save_model(model: LlamaModel, directory: str | Path, dtype: torch.dtype | None = None,
               state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write config.json and model.safetensors into `directory` (the caller makes it atomic).

    `state_dict` overrides the model's own (e.g. a full state dict gathered from FSDP shards).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    args = model.args
    state = {}
    for name, tensor in (state_dict if state_dict is not None else model.state_dict()).items():
        if args.tie_word_embeddings and name == "lm_head.weight":
            continue
        tensor = tensor.detach().to("cpu")
        state[name] = (tensor.to(dtype) if dtype else tensor).contiguous()
    save_file(state, str(directory / SINGLE_FILE), metadata={"format": "pt"})
    config = args.to_hf_config()
    config["torch_dtype"] = str(dtype or next(iter(state.values())).dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
