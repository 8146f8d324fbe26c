"""Fixtures for engine tests: a tiny random model of our own class (no checkpoint round trip) and helpers."""

from __future__ import annotations

import pytest
import torch

from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

EOS = 3


def make_tiny_model(seed: int = 0, **overrides) -> LlamaModel:
    kwargs = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=512, eos_token_id=EOS)
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = LlamaModel(ModelArgs(**kwargs))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.08)  # far from uniform logits, so greedy paths are well separated
    return model.eval()


@pytest.fixture(scope="module")
def tiny_model_factory():
    """make(seed=0, **ModelArgs overrides) -> a fresh tiny random model."""
    return make_tiny_model


@pytest.fixture(scope="module")
def tiny_model() -> LlamaModel:
    return make_tiny_model()


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    """Ten prompts of mixed lengths (2 to 60 tokens) over ordinary word ids."""
    g = torch.Generator().manual_seed(7)
    lengths = [2, 5, 60, 17, 33, 9, 48, 1, 25, 12]
    return [torch.randint(8, 128, (n,), generator=g).tolist() for n in lengths]
