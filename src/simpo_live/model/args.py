"""Model hyper-parameters read from (and written to) a Hugging Face `config.json`.

Only the Llama family is supported: `llama`, `qwen2` and `mistral` model types. Anything else is refused
here with a clear error rather than loaded wrongly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from simpo_live.errors import UserError

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")


class UnsupportedModelError(UserError):
    """A checkpoint whose architecture this implementation does not cover."""


DIMENSION_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "max_position_embeddings")


def check_dimensions(config: dict[str, Any], source: str) -> None:
    """Sizes must be positive integers and the heads must divide evenly; otherwise building the model would fail
    deep inside torch with a message that names nothing."""
    for key in DIMENSION_KEYS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UnsupportedModelError(f"{source}: {key} must be a positive integer, got {value!r}")
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    if heads % kv_heads:
        raise UnsupportedModelError(f"{source}: num_attention_heads ({heads}) is not a multiple of "
                                    f"num_key_value_heads ({kv_heads})")
    if not config.get("head_dim") and config["hidden_size"] % heads:
        raise UnsupportedModelError(f"{source}: hidden_size ({config['hidden_size']}) is not a multiple of "
                                    f"num_attention_heads ({heads}) and head_dim is not given")


@dataclass(frozen=True)
class ModelArgs:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    model_type: str = "llama"
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], source: str = "config.json") -> ModelArgs:
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedModelError(
                f"{source}: model_type {model_type!r} is not supported; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        if config.get("hidden_act", "silu") != "silu":
            raise UnsupportedModelError(f"{source}: hidden_act {config['hidden_act']!r} is not supported (silu only)")
        if config.get("sliding_window") and config.get("use_sliding_window", model_type == "mistral"):
            raise UnsupportedModelError(f"{source}: sliding-window attention is not supported")
        missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads") if k not in config]
        if missing:
            raise UnsupportedModelError(f"{source}: missing keys {missing}")
        check_dimensions(config, source)
        num_heads = config["num_attention_heads"]
        rope_scaling = config.get("rope_scaling")
        rope_theta = config.get("rope_theta")
        rope_parameters = config.get("rope_parameters")  # transformers >= 5 nests rope settings here
        if rope_parameters:
            rope_theta = rope_theta or rope_parameters.get("rope_theta")
            if rope_parameters.get("rope_type", "default") != "default":
                rope_scaling = rope_scaling or rope_parameters
        if rope_scaling is not None:
            rope_type = rope_scaling.get("rope_type", rope_scaling.get("type", "default"))
            if rope_type not in ("default", "llama3"):
                raise UnsupportedModelError(f"{source}: rope_scaling type {rope_type!r} is not supported")
            if rope_type == "default":
                rope_scaling = None
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_hidden_layers=config["num_hidden_layers"],
            num_attention_heads=num_heads,
            num_key_value_heads=config.get("num_key_value_heads") or num_heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // num_heads,
            max_position_embeddings=config.get("max_position_embeddings", 4096),
            rms_norm_eps=config.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope_theta or 10000.0),
            rope_scaling=rope_scaling,
            attention_bias=bool(config.get("attention_bias", model_type == "qwen2")),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            model_type=model_type,
            bos_token_id=config.get("bos_token_id"),
            eos_token_id=config.get("eos_token_id"),
            pad_token_id=config.get("pad_token_id"),
            extra={k: v for k, v in config.items() if k in ("torch_dtype", "dtype", "transformers_version")},
        )

    def to_hf_config(self) -> dict[str, Any]:
        architectures = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}
        config = {k: v for k, v in asdict(self).items() if k != "extra"}
        config["architectures"] = [architectures[self.model_type]]
        config["hidden_act"] = "silu"
        if self.model_type == "qwen2":
            # Qwen2 always has q/k/v biases and no attention_bias key.
            config.pop("attention_bias")
            config["use_sliding_window"] = False
        if self.model_type == "mistral":
            config["sliding_window"] = None
        if self.rope_scaling is None:
            config.pop("rope_scaling")
        return config
