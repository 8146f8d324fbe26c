"""Load and save Hugging Face checkpoints (config.json + safetensors, single file or sharded) for our model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from simpo_live.errors import UserError
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # config dtype names
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
ADAPTER_CONFIG = "adapter_config.json"  # peft's adapter directory (model/adapter_files.py): adapters, not a model


class CheckpointError(UserError):
    """A checkpoint directory that cannot be loaded, with the reason and the path."""


def read_model_args(directory: str | Path) -> ModelArgs:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: model directory not found")
    config_path = directory / "config.json"
    if not config_path.is_file() and (directory / ADAPTER_CONFIG).is_file():
        raise CheckpointError(f"{directory}: holds LoRA adapters, not a model: write the merged model with "
                              "`simpo-live export RUN_DIR --merged OUT` and use OUT")
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: not found (expected a Hugging Face model directory)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    return ModelArgs.from_hf_config(config, source=str(config_path))


def _tensor_names(file: Path) -> list[str]:
    try:
        with safe_open(file, framework="pt") as f:
            return list(f.keys())
    except Exception as e:  # safetensors raises its own error types for a truncated or foreign file
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e


def _tensor_files(directory: Path, single_file: str = SINGLE_FILE) -> dict[str, Path]:
    """Map each tensor name to the safetensors file holding it (`single_file`, or the shards of an index)."""
    index_path = directory / INDEX_FILE
    if single_file == SINGLE_FILE and index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index_path}: not a safetensors index with a \"weight_map\" ({e})") from e
        files = {name: directory / file for name, file in weight_map.items()}
        absent = sorted({str(f.name) for f in files.values() if not f.is_file()})
        if absent:
            raise CheckpointError(f"{index_path}: names shard files that are missing: {', '.join(absent)}")
        return files
    single = directory / single_file
    if not single.is_file():
        missing = f"neither {SINGLE_FILE} nor {INDEX_FILE} found" if single_file == SINGLE_FILE else f"{single_file} not found"
        raise CheckpointError(f"{directory}: {missing}")
    return {name: single for name in _tensor_names(single)}


def tensor_shapes(directory: str | Path, single_file: str = SINGLE_FILE) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the safetensors headers alone (a truncated or damaged file is a CheckpointError
    naming it; no weight is read)."""
    directory = Path(directory)
    shapes = {}
    by_file: dict[Path, list[str]] = {}
    for name, file in _tensor_files(directory, single_file).items():
        by_file.setdefault(file, []).append(name)
    for file, names in by_file.items():
        try:
            with safe_open(file, framework="pt") as f:
                shapes.update({name: tuple(f.get_slice(name).get_shape()) for name in names})
        except Exception as e:  # safetensors raises its own error types for a damaged header
            raise CheckpointError(f"{file}: cannot be read as safetensors ({e})") from e
    return shapes


def load_state_dict(directory: str | Path, names: list[str], single_file: str = SINGLE_FILE
                    ) -> dict[str, torch.Tensor]:
    """Read the named tensors; a missing one, or a damaged file, is an error naming it and the directory."""
    directory = Path(directory)
    files = _tensor_files(directory, single_file)
    missing = [n for n in names if n not in files]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{directory}: missing tensors {shown}")
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name], []).append(name)
    tensors = {}
    for file, file_names in by_file.items():
        try:
            with safe_open(file, framework="pt") as f:
                for name in file_names:
                    tensors[name] = f.get_tensor(name)
        except Exception as e:  # a truncated shard fails here, at the first tensor past its end
            raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e
    return tensors


def is_stored(args: ModelArgs, name: str) -> bool:
    """Whether a checkpoint holds tensor `name`: a tied lm_head is the embedding, not a tensor of its own."""
    return not (args.tie_word_embeddings and name == "lm_head.weight")


def check_stored_shapes(directory: str | Path, expected_shapes: dict[str, tuple[int, ...]],
                        single_file: str = SINGLE_FILE) -> None:
    """The safetensors headers hold every expected tensor in its expected shape (no weight is read)."""
    stored = tensor_shapes(directory, single_file)
    missing = sorted(set(expected_shapes) - set(stored))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{directory}: missing tensors {shown}")
    for name, shape in expected_shapes.items():
        if stored[name] != shape:
            raise CheckpointError(f"{directory}: tensor {name} has shape {stored[name]}, config.json implies {shape}")


def load_model(directory: str | Path, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> LlamaModel:
    """Build our model from a local HF directory, weights cast to `dtype` on `device`."""
    args = read_model_args(directory)
    with torch.device("meta"):
        model = LlamaModel(args)
    names = [n for n in model.state_dict() if is_stored(args, n)]
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
        if not is_stored(args, name):
            continue
        tensor = tensor.detach().to("cpu")
        state[name] = (tensor.to(dtype) if dtype else tensor).contiguous()
    save_file(state, str(directory / SINGLE_FILE), metadata={"format": "pt"})
    (directory / SINGLE_FILE).chmod(0o644)  # safetensors creates it 0600, unlike every other file it sits beside
    config = args.to_hf_config()
    config["torch_dtype"] = str(dtype or next(iter(state.values())).dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
