"""The eval pre-flight sizes the KV cache by the engine's rule, in the engine's dtype, beside the training state."""

import torch

import simpo_live.evals.preflight as preflight
from simpo_live.config.schema import InferenceEvalConfig
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

FREE = 64 << 20


def test_preflight_sizes_pages_in_the_engines_kv_dtype(monkeypatch, word_tokenizer):
    model = LlamaModel(ModelArgs(vocab_size=len(word_tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                 max_position_embeddings=256))
    monkeypatch.setattr(preflight, "free_memory_bytes", lambda device: FREE)
    cfg = InferenceEvalConfig(page_size=16, hbm_utilization=0.5)
    adam_bytes = 2 * sum(p.numel() * 4 for p in model.parameters())  # fp32 moments, allocated at step 1
    for dtype, element_bytes in ((torch.float32, 4), (torch.bfloat16, 2)):
        fit = preflight.check_eval_fits(cfg, model, word_tokenizer, ["hello world"], torch.device("cpu"),
                                        world_size=1, sharded=False, kv_dtype=dtype)
        # A page: 16 tokens x 2 layers x (k, v) x 2 KV heads x 16 dims x the KV dtype's bytes.
        assert fit.cache_pages == int((FREE - adam_bytes) * 0.5) // (16 * 2 * 2 * 2 * 16 * element_bytes)
