"""The one Llama-family decoder used by training and by the inference engine, and its HF checkpoint I/O."""

from simpo_live.model.args import ModelArgs, UnsupportedModelError
from simpo_live.model.llama import AttentionBackend, LlamaModel

__all__ = ["AttentionBackend", "LlamaModel", "ModelArgs", "UnsupportedModelError"]
