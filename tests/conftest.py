"""Shared fixtures: tiny tokenizers and tiny random HF checkpoints built on the spot (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not torch.cuda.is_available():
    # The engine's Triton decode kernel runs on CPU tensors through Triton's interpreter in tests; the mode is
    # fixed when triton is first imported (torch itself does not import it).
    os.environ.setdefault("TRITON_INTERPRET", "1")

from reward_models import make_reward_model_dir  # noqa: E402

TEST_WORDS = [f"w{i}" for i in range(100)] + ["reverse:", "sort:", "hello", "world"]


@pytest.fixture(scope="session")
def word_tokenizer():
    from simpo_live.data.word_tokenizer import build_word_tokenizer

    return build_word_tokenizer(TEST_WORDS)


def make_hf_model_dir(directory: Path, model_type: str = "llama", tokenizer=None, seed: int = 0, **overrides) -> Path:
    """Save a tiny random `transformers` model of `model_type` (and a tokenizer) to `directory`."""
    import transformers

    config_classes = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "mistral": transformers.MistralConfig,
    }
    kwargs = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=2, eos_token_id=3, pad_token_id=0)
    if model_type == "mistral":
        kwargs["sliding_window"] = None
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config_classes[model_type](**kwargs))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.08)  # larger than HF's init so logits are far from uniform
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def hf_model_dir(tmp_path, word_tokenizer):
    """Factory: hf_model_dir(model_type="llama", **config overrides) -> directory with model + tokenizer."""

    def make(model_type: str = "llama", **overrides) -> Path:
        return make_hf_model_dir(tmp_path / f"{model_type}-model", model_type, word_tokenizer, **overrides)

    return make


@pytest.fixture(scope="session")
def task_assets(tmp_path_factory):
    """A tiny random Llama speaking the reverse-words vocabulary, and 64 preference rows for it."""
    import json

    from simpo_live.data.word_tokenizer import build_word_tokenizer
    from simpo_live.tasks import reverse_words

    root = tmp_path_factory.mktemp("task")
    tokenizer = build_word_tokenizer([reverse_words.PREFIX, *reverse_words.VOCABULARY])
    model_dir = make_hf_model_dir(root / "model", "llama", tokenizer, vocab_size=320, hidden_size=64,
                                  intermediate_size=128, max_position_embeddings=512)
    data_path = root / "prefs.jsonl"
    rows = reverse_words.make_preference_rows(64, seed=0)
    data_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return model_dir, data_path


@pytest.fixture(scope="session")
def task_reward_model(tmp_path_factory, task_assets):
    """A tiny random reward model in the task assets' vocabulary."""
    from transformers import AutoTokenizer

    model_dir, _ = task_assets
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return make_reward_model_dir(tmp_path_factory.mktemp("reward") / "rm", tokenizer, vocab_size=320)
