"""Bad models and tokenizers, for `train` (model.path) and `sample` (--model): not a model directory, another
architecture, missing or truncated shards, damaged config.json or index, tensors of the wrong shape, no chat
template."""

import json
import shutil
from pathlib import Path

from corpus import QUICK, Case, category_tests

SAMPLE = ["sample", "--synthetic", "2", "--max-new-tokens", "2", "--out", "{run}"]


def model_copy(name: str, edit=None):
    """Setup: copy the task model to tmp/name, then `edit(directory)`."""

    def setup(env, run) -> None:
        target = env.tmp / name
        shutil.copytree(env.model, target)
        if edit is not None:
            edit(target)

    return setup


def edit_config(**changes):
    def edit(directory: Path) -> None:
        config = json.loads((directory / "config.json").read_text())
        config.update(changes)
        (directory / "config.json").write_text(json.dumps(config))

    return edit


def truncate(file: str, keep: int = 1000):
    def edit(directory: Path) -> None:
        data = (directory / file).read_bytes()
        (directory / file).write_bytes(data[:keep])

    return edit


def shard_index_naming_a_missing_shard(directory: Path) -> None:
    from safetensors import safe_open

    with safe_open(directory / "model.safetensors", framework="pt") as f:
        names = list(f.keys())
    (directory / "model.safetensors").rename(directory / "model-00001-of-00002.safetensors")
    weight_map = {name: f"model-0000{1 + i % 2}-of-00002.safetensors" for i, name in enumerate(names)}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def drop_a_tensor(directory: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    tensors.pop("model.norm.weight")
    save_file(tensors, directory / "model.safetensors")


def remove_chat_template(directory: Path) -> None:
    (directory / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (directory / "tokenizer_config.json").write_text(json.dumps(config))


def only_tokenizer(directory: Path) -> None:
    (directory / "config.json").unlink()


def train_with(model: str) -> list[str]:
    return ["train", *QUICK, f"--model.path={model}"]


def sample_with(model: str) -> list[str]:
    return [*SAMPLE, "--model", model]


CASES = [
    Case("model_dir_missing", train_with("{tmp}/nope"), 1, ["{tmp}/nope: model directory not found"]),
    Case("model_path_is_a_file", train_with("{data}"), 1, ["{data}: model directory not found"]),
    Case("empty_directory", train_with("{tmp}/empty"), 1, ["{tmp}/empty/config.json: not found"],
         setup=lambda env, run: (env.tmp / "empty").mkdir()),
    Case("no_config_json", train_with("{tmp}/tokenizer_only"), 1,
         ["{tmp}/tokenizer_only/config.json: not found (expected a Hugging Face model directory)"],
         setup=model_copy("tokenizer_only", only_tokenizer)),
    Case("unsupported_architecture", train_with("{tmp}/gpt2"), 1,
         ["{tmp}/gpt2/config.json: model_type 'gpt2' is not supported; supported: llama, qwen2, mistral"],
         setup=model_copy("gpt2", edit_config(model_type="gpt2"))),
    Case("unsupported_activation", train_with("{tmp}/gelu"), 1,
         ["{tmp}/gelu/config.json: hidden_act 'gelu' is not supported"],
         setup=model_copy("gelu", edit_config(hidden_act="gelu"))),
    Case("config_json_invalid", train_with("{tmp}/bad_json"), 1, ["{tmp}/bad_json/config.json: not valid JSON"],
         setup=model_copy("bad_json", lambda d: (d / "config.json").write_text("{"))),
    Case("dimension_not_an_int", train_with("{tmp}/str_size"), 1,
         ["{tmp}/str_size/config.json: hidden_size must be a positive integer, got '64'"],
         setup=model_copy("str_size", edit_config(hidden_size="64"))),
    Case("heads_do_not_divide", train_with("{tmp}/heads"), 1,
         ["{tmp}/heads/config.json: num_attention_heads (4) is not a multiple of num_key_value_heads (3)"],
         setup=model_copy("heads", edit_config(num_key_value_heads=3))),
    Case("weights_missing", train_with("{tmp}/no_weights"), 1,
         ["{tmp}/no_weights: neither model.safetensors nor model.safetensors.index.json found"],
         setup=model_copy("no_weights", lambda d: (d / "model.safetensors").unlink())),
    Case("weights_truncated", train_with("{tmp}/truncated"), 1,
         ["{tmp}/truncated/model.safetensors: not a readable safetensors file"],
         setup=model_copy("truncated", truncate("model.safetensors", 200_000))),
    Case("weights_header_truncated", train_with("{tmp}/header"), 1,
         ["{tmp}/header/model.safetensors: not a readable safetensors file"],
         setup=model_copy("header", truncate("model.safetensors", 20))),
    Case("shard_missing", train_with("{tmp}/sharded"), 1,
         ["{tmp}/sharded/model.safetensors.index.json: names shard files that are missing: "
          "model-00002-of-00002.safetensors"], setup=model_copy("sharded", shard_index_naming_a_missing_shard)),
    Case("index_invalid", train_with("{tmp}/bad_index"), 1,
         ["{tmp}/bad_index/model.safetensors.index.json: not a safetensors index"],
         setup=model_copy("bad_index", lambda d: (d / "model.safetensors.index.json").write_text("[]"))),
    Case("tensor_missing", train_with("{tmp}/dropped"), 1, ["{tmp}/dropped: missing tensors model.norm.weight"],
         setup=model_copy("dropped", drop_a_tensor)),
    Case("tensor_shape_differs_from_config", train_with("{tmp}/reshaped"), 1,
         ["{tmp}/reshaped: tensor model.layers.0.mlp.gate_proj.weight has shape (128, 64), config.json implies"],
         setup=model_copy("reshaped", edit_config(intermediate_size=96))),
    Case("no_chat_template", train_with("{tmp}/no_template"), 1, ["the tokenizer has no chat template"],
         setup=model_copy("no_template", remove_chat_template)),
    Case("sample_model_missing", sample_with("{tmp}/nope"), 2, ["--model {tmp}/nope: directory not found"]),
    Case("sample_not_a_model_dir", sample_with("{tmp}/empty_for_sample"), 2,
         ["--model {tmp}/empty_for_sample/config.json: not found"],
         setup=lambda env, run: (env.tmp / "empty_for_sample").mkdir()),
    Case("sample_truncated_weights", sample_with("{tmp}/truncated_for_sample"), 2,
         ["--model {tmp}/truncated_for_sample/model.safetensors: not a readable safetensors file"],
         setup=model_copy("truncated_for_sample", truncate("model.safetensors", 200_000))),
    Case("sample_unsupported_architecture", sample_with("{tmp}/gpt2_for_sample"), 2,
         ["--model {tmp}/gpt2_for_sample/config.json: model_type 'gpt2' is not supported"],
         setup=model_copy("gpt2_for_sample", edit_config(model_type="gpt2"))),
]

results, test_case = category_tests(CASES)
