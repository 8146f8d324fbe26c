"""Loading a tokenizer from a local directory: clear errors, a pad token always."""

from __future__ import annotations

import pytest

from simpo_live.data import DataError, load_tokenizer


def test_loads_a_saved_tokenizer_with_its_chat_template(tmp_path, word_tokenizer):
    word_tokenizer.save_pretrained(tmp_path)
    tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.pad_token == "<pad>"
    messages = [{"role": "user", "content": "hello"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "<s><|user|> hello <|end|> <|assistant|> ")


def test_missing_pad_token_falls_back_to_eos(tmp_path, word_tokenizer):
    import copy

    no_pad = copy.deepcopy(word_tokenizer)
    no_pad.pad_token = None
    no_pad.save_pretrained(tmp_path)
    assert load_tokenizer(tmp_path).pad_token == "</s>"


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nope'}: tokenizer directory not found"):
        load_tokenizer(tmp_path / "nope")


def test_directory_without_a_tokenizer(tmp_path):
    with pytest.raises(DataError, match="cannot load a tokenizer"):
        load_tokenizer(tmp_path)
