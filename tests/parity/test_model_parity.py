"""Our model's logits equal transformers' for tiny random Llama, Qwen2 and Mistral checkpoints (fp32)."""

import pytest
import torch
import transformers

from simpo_live.model.checkpoint import CheckpointError, load_model, save_model
from simpo_live.model import UnsupportedModelError

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}

CASES = {
    "llama": ("llama", {}),
    "llama3-rope-scaling-bias": ("llama", {"rope_scaling": LLAMA3_SCALING, "attention_bias": True}),
    "llama-tied": ("llama", {"tie_word_embeddings": True}),
    "qwen2": ("qwen2", {}),
    "qwen2-tied": ("qwen2", {"tie_word_embeddings": True}),
    "mistral": ("mistral", {}),
}


def reference_and_ours(directory):
    reference = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ours = load_model(directory).eval()
    return reference, ours


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(case, hf_model_dir):
    model_type, overrides = CASES[case]
    directory = hf_model_dir(model_type, **overrides)
    reference, ours = reference_and_ours(directory)
    input_ids = torch.randint(0, 128, (3, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(input_ids).logits
        actual = ours(input_ids)
    assert (expected - actual).abs().max().item() <= 1e-4


def test_logits_at_selects_rows_and_columns(hf_model_dir):
    ours = load_model(hf_model_dir("llama")).eval()
    input_ids = torch.randint(0, 128, (2, 10))
    rows, cols = torch.tensor([0, 1, 1]), torch.tensor([3, 0, 9])
    with torch.no_grad():
        full = ours(input_ids)
        picked = ours(input_ids, logits_at=(rows, cols))
    torch.testing.assert_close(picked, full[rows, cols], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["llama", "qwen2-tied", "llama3-rope-scaling-bias"])
def test_saved_checkpoint_loads_in_transformers(case, hf_model_dir, tmp_path):
    model_type, overrides = CASES[case]
    ours = load_model(hf_model_dir(model_type, **overrides)).eval()
    save_model(ours, tmp_path / "saved")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "saved", dtype=torch.float32).eval()
    input_ids = torch.randint(0, 128, (2, 33))
    with torch.no_grad():
        assert (reloaded(input_ids).logits - ours(input_ids)).abs().max().item() <= 1e-4


def test_sharded_checkpoint_loads(hf_model_dir, tmp_path):
    directory = hf_model_dir("llama")
    reference = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ours = load_model(tmp_path / "sharded").eval()
    input_ids = torch.randint(0, 128, (1, 20))
    with torch.no_grad():
        assert (reference(input_ids).logits - ours(input_ids)).abs().max().item() <= 1e-4


def test_unsupported_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "vocab_size": 10}')
    with pytest.raises(UnsupportedModelError, match="model_type 'gpt2' is not supported"):
        load_model(tmp_path)


def test_missing_tensor_is_named(hf_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    directory = hf_model_dir("llama")
    tensors = load_file(directory / "model.safetensors")
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensors model.layers.1.mlp.up_proj.weight"):
        load_model(directory)


def test_missing_directory_is_clear(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: model directory not found"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json: not found"):
        load_model(tmp_path / "empty")
