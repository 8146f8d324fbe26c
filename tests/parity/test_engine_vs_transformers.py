"""Greedy engine output equals `transformers` `generate` greedy, token for token, on tiny random checkpoints."""

import pytest
import torch
import transformers

from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams
from simpo_live.model.checkpoint import load_model

MAX_NEW = 20


def reference_greedy(hf_model, prompt, stop_ids):
    """HF greedy continuation of one prompt (batch of one: no padding in the reference)."""
    out = hf_model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                            max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=list(stop_ids), pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_greedy_equals_transformers_generate(hf_model_dir, word_tokenizer, model_type):
    directory = hf_model_dir(model_type, tie_word_embeddings=model_type == "qwen2")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    model = load_model(directory, torch.float32)
    g = torch.Generator().manual_seed(3)
    lengths = [1, 4, 9, 23, 40, 64, 7, 15]
    prompts = [torch.randint(8, 104, (n,), generator=g).tolist() for n in lengths]
    params = SamplingParams(temperature=0, max_new_tokens=MAX_NEW)
    # Small rounds and few sequences so chunked prefill, waiting and mixed prefill/decode rounds all happen.
    config = EngineConfig(max_seqs=3, max_tokens_per_round=16, page_size=8, max_pages=40)
    with Engine(model, word_tokenizer, config) as engine:
        completions = engine.generate([Request(i, p, params) for i, p in enumerate(prompts)])
        stop_ids = engine.stop_token_ids
    for prompt, completion in zip(prompts, completions):
        expected = reference_greedy(hf_model, prompt, stop_ids)
        assert completion.token_ids == expected
        assert completion.finish_reason == ("stop" if expected[-1] in stop_ids else "length")
        assert completion.text == word_tokenizer.decode(expected, skip_special_tokens=True)
