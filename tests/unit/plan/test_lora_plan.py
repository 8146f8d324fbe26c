"""The memory plan with LoRA: adapter counts equal peft's, the layer's saved tensors equal autograd's, the terms of a
frozen base, and Llama-3-8B with adapters on one 80 GB GPU at 2,048-token rows."""

import pytest
import torch

from simpo_live.config import load_config
from simpo_live.config.schema import LORA_TARGETS, LoraConfig
from simpo_live.data import TokenizedPair
from simpo_live.model import LlamaModel, ModelArgs
from simpo_live.model.lora import add_adapters, initial_adapters, is_adapter, peft_config, set_adapters
from simpo_live.model.rope import rope_cos_sin
from simpo_live.plan import MemoryPlan
from simpo_live.plan.from_config import plan_inputs
from simpo_live.plan.terms import adapter_parameters, lora_layer_activation_bytes_per_token
from tiny_training import saved_bytes

ARGS = ModelArgs(vocab_size=1000, hidden_size=96, intermediate_size=160, num_hidden_layers=8,
                 num_attention_heads=6, num_key_value_heads=2, head_dim=16)
LLAMA3_8B = ModelArgs(vocab_size=128_256, hidden_size=4096, intermediate_size=14_336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=8192)


def adapted_layer(lora: LoraConfig, dtype: torch.dtype):
    model = LlamaModel(ARGS)
    config = peft_config(lora)
    add_adapters(model, config)
    model.to(dtype)
    set_adapters(model, initial_adapters(ARGS, config, 0))  # fp32, whatever the base's dtype
    return model, model.model.layers[0]


def test_adapter_count_is_peft_s():
    lora = LoraConfig(rank=8, target_modules=["q_proj", "o_proj", "down_proj"])
    with torch.device("meta"):
        model = LlamaModel(ARGS)
    add_adapters(model, peft_config(lora))
    counted = sum(p.numel() for n, p in model.named_parameters() if is_adapter(n))
    assert adapter_parameters(ARGS, 8, ("q_proj", "o_proj", "down_proj")) == counted


@pytest.mark.parametrize("targets, dropout, dtype, autocast", [
    (LORA_TARGETS, 0.0, torch.float32, False),  # the inputs are shared: each kept once
    (("q_proj", "v_proj"), 0.0, torch.float32, False),  # frozen projections keep no input
    (LORA_TARGETS, 0.1, torch.float32, False),  # dropout keeps its noise and output per adapter
    (LORA_TARGETS, 0.0, torch.bfloat16, False),  # peft's fp32 cast of a bf16 input: one copy per adapter
    (LORA_TARGETS, 0.0, torch.bfloat16, True),  # ... cast back to bf16 by autocast
    (LORA_TARGETS, 0.0, torch.float32, True),  # fp32 base under autocast: an upper bound
])
def test_layer_activations_with_adapters_are_what_autograd_saves(targets, dropout, dtype, autocast):
    model, layer = adapted_layer(LoraConfig(rank=4, dropout=dropout, target_modules=list(targets)), dtype)
    rows, seq = 2, 40
    x = torch.randn(rows, seq, ARGS.hidden_size, requires_grad=True, dtype=dtype)
    cos, sin = rope_cos_sin(torch.arange(seq).expand(rows, seq), model.inv_freq, x.dtype)
    excluded = {t.untyped_storage().data_ptr() for t in (*layer.parameters(), cos, sin)}

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            layer.train()(x, cos, sin, None)

    counted = saved_bytes(run, exclude=excluded)
    if autocast:  # the casts of the weights are the plan's "autocast weight copies" (fp32 base) or tiny (adapters)
        counted -= sum(p.numel() * 2 for p in layer.parameters() if p.dim() == 2 and p.dtype == torch.float32)
    compute, residual = (2, dtype.itemsize) if autocast or dtype == torch.bfloat16 else (4, 4)
    expected = lora_layer_activation_bytes_per_token(
        ARGS, residual, compute, autocast and dtype == torch.float32, 4, tuple(targets), dropout > 0,
        copy_bytes=2 if autocast else 4) * rows * seq
    if autocast:
        assert counted <= expected <= 1.1 * counted
    else:
        assert counted == expected


def plan_of(*overrides: str, args: ModelArgs = ARGS, device: str = "cpu", world_size: int = 1, gib: float = 1000.0,
            seq: int = 300) -> MemoryPlan:
    cfg = load_config(overrides=["--inference_eval.reward_model=null", "--inference_eval.scorer=null", *overrides])
    pair = TokenizedPair([1] * (seq // 2), [1] * (seq // 2), [1] * (seq // 2), "t", "")
    return MemoryPlan.of(plan_inputs(cfg, args, world_size, device, pairs=[pair]), int(gib * 2**30))


def test_a_frozen_base_has_no_gradients_or_moments_and_the_eval_merges_into_a_replica():
    full, lora = plan_of(), plan_of("--lora.rank=8")
    terms = {name: (phase, b) for name, phase, b in lora.terms}
    adapters = adapter_parameters(ARGS, 8, LORA_TARGETS) * 4
    assert terms["frozen base weights"] == dict((n, (p, b)) for n, p, b in full.terms)["parameters"]
    assert terms["adapter weights (LoRA, fp32)"] == ("both", adapters)
    assert terms["optimizer state (AdamW moments)"] == ("both", 2 * adapters)
    assert terms["gradients"] == ("train", adapters)
    assert "eval replica" in terms and not any(name == "eval replica" for name, _, _ in full.terms)
    sharded = {name: b for name, _, b in plan_of("--lora.rank=8", "--trainer.strategy=fsdp", world_size=2).terms}
    assert sharded["adapter weights (LoRA, fp32)"] == adapters // 2
    assert sharded["frozen base weights"] == terms["frozen base weights"][1] // 2  # in model.dtype, sharded too


def test_llama3_8b_with_lora_fits_one_80gb_gpu_at_2048_token_rows_where_full_fine_tuning_does_not():
    knobs = ["--model.dtype=bfloat16", "--trainer.micro_batch_size=1", "--trainer.train_batch_size=16",
             "--data.max_seq_len=2048", "--data.max_prompt_len=1024"]
    lora = plan_of(*knobs, "--lora.rank=8", args=LLAMA3_8B, device="cuda", gib=80, seq=2048)
    full = plan_of(*knobs, args=LLAMA3_8B, device="cuda", gib=80, seq=2048)
    assert lora.inputs.seq_len == 2048 and lora.fits, lora.peak_bytes / 2**30
    assert not full.fits
