"""The embedded default's assets: the tiny model and tokenizer load, and the bundled data fits the preset."""

from __future__ import annotations

import json

import torch

from simpo_live.config import load_config
from simpo_live.config.schema import BUNDLED_DATA, BUNDLED_MODEL
from simpo_live.data import load_preference_data, load_tokenizer
from simpo_live.model.checkpoint import load_model
from simpo_live.tasks import reverse_words as task


def test_bundled_model_is_the_tiny_llama():
    config = json.loads((BUNDLED_MODEL / "config.json").read_text())
    expected = {"model_type": "llama", "vocab_size": 4096, "hidden_size": 256, "num_hidden_layers": 4,
                "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 512,
                "tie_word_embeddings": True, "max_position_embeddings": 4096}
    assert {k: config[k] for k in expected} == expected
    model = load_model(BUNDLED_MODEL)
    logits = model(torch.tensor([[2, 4, 5]]))
    assert logits.shape == (1, 3, 4096) and torch.isfinite(logits).all()


def test_bundled_tokenizer_matches_the_model_and_applies_the_chat_template():
    config = json.loads((BUNDLED_MODEL / "config.json").read_text())
    tokenizer = load_tokenizer(BUNDLED_MODEL)
    assert len(tokenizer) == config["vocab_size"]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        config["bos_token_id"], config["eos_token_id"], config["pad_token_id"])
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    prompt = task.make_prompt(["ba", "ko", "mi"])
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<s><|user|> reverse: ba ko mi <|end|> <|assistant|> "
    assert tokenizer.unk_token_id not in tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(tokenizer(" ".join(task.VOCABULARY))["input_ids"][1:]) == list(
        task.VOCABULARY)


def test_bundled_data_parses_under_the_default_preset():
    cfg = load_config().data
    assert cfg.train_path == str(BUNDLED_DATA) and (cfg.max_seq_len, cfg.max_prompt_len) == (128, 64)
    assert cfg.overlong == "error"  # so a single over-long row would fail here
    data = load_preference_data(cfg, load_tokenizer(BUNDLED_MODEL), seed=0)
    num_rows = sum(1 for line in BUNDLED_DATA.read_text().splitlines() if line.strip())
    assert data.num_dropped == 0
    assert len(data.train) + len(data.validation) == num_rows >= 1000
    assert len(data.validation) == round(num_rows * cfg.validation_split_fraction)
    assert BUNDLED_DATA.stat().st_size < 1_000_000


def test_bundled_model_loads_in_transformers_with_the_same_logits():
    import transformers

    ids = torch.tensor([[2, 4, 8, 55, 52, 193, 7, 5]])
    ours = load_model(BUNDLED_MODEL)(ids)
    reference = transformers.AutoModelForCausalLM.from_pretrained(BUNDLED_MODEL, dtype=torch.float32)
    torch.testing.assert_close(ours, reference(ids).logits, rtol=1e-4, atol=1e-4)
