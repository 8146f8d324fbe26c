"""Tiny random reward models for tests (importable: `tests/` is on the pytest path)."""

from __future__ import annotations

from pathlib import Path

import torch


def make_reward_model_dir(directory: Path, tokenizer, vocab_size: int, seed: int = 0, **overrides) -> Path:
    """Save a tiny random one-output `LlamaForSequenceClassification` reward model (and its tokenizer)."""
    import transformers

    kwargs = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                  bos_token_id=2, eos_token_id=3, pad_token_id=0, num_labels=1)
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = transformers.LlamaForSequenceClassification(transformers.LlamaConfig(**kwargs))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2)  # rewards that differ clearly between answers
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
