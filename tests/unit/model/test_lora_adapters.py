"""LoRA through peft on the one model: names on disk, seeded initial adapters, the frozen base, and the merge."""

import torch

from simpo_live.config.schema import LoraConfig
from simpo_live.model.adapter_files import file_key, model_key
from simpo_live.model.lora import (
    add_adapters,
    base_name,
    initial_adapters,
    is_adapter,
    merged_model,
    peft_config,
    set_adapters,
)
from tiny_training import tiny_model

CONFIG = LoraConfig(rank=4, alpha=8.0, target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"])


def adapted(tied: bool = False, seed: int = 0):
    model = tiny_model(tied=tied)
    config = peft_config(CONFIG)
    add_adapters(model, config)
    weights = initial_adapters(model.args, config, seed)
    with torch.no_grad():  # B starts at zero (no update yet): give it values so the adapters change the output
        g = torch.Generator().manual_seed(seed)
        weights = {n: t + 0.2 * torch.randn(t.shape, generator=g) if ".lora_B." in n else t for n, t in weights.items()}
    set_adapters(model, weights)
    return model.eval(), config, weights


def test_adapter_names_on_disk_are_peft_models_and_map_back():
    name = "model.layers.3.self_attn.q_proj.lora_A.default.weight"
    assert file_key(name) == "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
    assert model_key(file_key(name)) == name
    assert base_name("model.layers.0.mlp.down_proj.base_layer.weight") == "model.layers.0.mlp.down_proj.weight"
    assert base_name("model.norm.weight") == "model.norm.weight"


def test_initial_adapters_come_from_the_seed_alone_and_start_at_zero_update():
    model = tiny_model(tied=False)
    config = peft_config(CONFIG)
    before = torch.get_rng_state()
    first, again = initial_adapters(model.args, config, 7), initial_adapters(model.args, config, 7)
    assert torch.equal(torch.get_rng_state(), before)  # the run's own RNG stream is untouched
    other = initial_adapters(model.args, config, 8)
    assert len(first) == 2 * 4 * model.args.num_hidden_layers
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first["model.layers.0.self_attn.q_proj.lora_A.default.weight"],
                           other["model.layers.0.self_attn.q_proj.lora_A.default.weight"])
    assert all(t.dtype == torch.float32 and (".lora_A." in n or not t.any()) for n, t in first.items())


def test_only_the_adapters_train_and_the_base_is_untouched():
    plain = tiny_model(tied=False)
    model, _, _ = adapted()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(is_adapter(n) for n in trained)
    base = {base_name(n): p for n, p in model.named_parameters() if not is_adapter(n)}
    assert all(torch.equal(base[n], p) for n, p in plain.named_parameters())


def test_merged_model_computes_what_the_adapters_do():
    for tied in (False, True):
        model, config, weights = adapted(tied)
        base = {base_name(n): t.clone() for n, t in model.state_dict().items() if not is_adapter(n)}
        merged = merged_model(model.args, base, weights, config).eval()
        assert type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear  # plain again: the engine's model
        ids = torch.randint(4, 97, (2, 11), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            torch.testing.assert_close(merged(ids), model(ids), rtol=1e-5, atol=1e-5)
            assert (model(ids) - tiny_model(tied=tied)(ids)).abs().max() > 1e-3  # the adapters do change it
