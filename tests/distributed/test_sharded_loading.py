"""FSDP2 loading from the meta device (2 ranks, gloo/CPU): each rank ends with only its shards, and the model
they hold together is the one a single process loads (one file or a bf16 sharded index); the eval replica is
gathered in bf16; a damaged checkpoint is the same clear error on every rank."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import make_hf_model_dir
from launchers import check, free_port, worker_env
from simpo_live.model.checkpoint import load_model

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

WORKER = Path(__file__).with_name("sharded_load_worker.py")


def load_on_two_ranks(model_dir: Path, out_dir: Path, dtype: str) -> list[dict]:
    out_dir.mkdir()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    check(subprocess.run([*launcher, str(WORKER), str(model_dir), str(out_dir), dtype], env=worker_env(),
                         capture_output=True, text=True, timeout=240))
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize(("tied", "dtype"), [(False, "float32"), (True, "bfloat16")])
def test_two_ranks_hold_halves_of_the_one_process_model(tied, dtype, tmp_path):
    # 5 KV heads x 8: the k/v rows (40) and vocab (131) do not split evenly, as in real models.
    model_dir = make_hf_model_dir(tmp_path / "model", "llama", vocab_size=131, hidden_size=40,
                                  intermediate_size=72, num_attention_heads=5, num_key_value_heads=5,
                                  tie_word_embeddings=tied)
    ranks = load_on_two_ranks(model_dir, tmp_path / "out", dtype)
    whole = load_model(model_dir)
    for name, param in whole.state_dict().items():
        counts = [r["local_numel"][name] for r in ranks]
        assert sum(counts) == param.numel() and max(counts) <= -(-param.shape[0] // 2) * param[0].numel(), name
    # model.dtype bfloat16 under FSDP is mixed precision: the shards (and AdamW state) stay fp32.
    assert all(r["local_dtypes"] == ["torch.float32"] for r in ranks)
    expected = {k: v for k, v in whole.state_dict().items() if not (tied and k == "lm_head.weight")}
    for replica_dtype in (torch.float32, torch.bfloat16):  # as trained, and the eval's bf16 (cast per shard)
        replica = load_file(tmp_path / "out" / f"replica_{str(replica_dtype).removeprefix('torch.')}.safetensors")
        assert sorted(replica) == sorted(expected)
        for name, tensor in replica.items():
            assert tensor.dtype == replica_dtype and torch.equal(tensor, expected[name].to(replica_dtype)), name


def test_a_bf16_sharded_index_loads_into_fp32_shards_equal_to_one_process(tmp_path):
    import transformers

    source = make_hf_model_dir(tmp_path / "source", "llama", vocab_size=131, hidden_size=40, intermediate_size=72,
                               num_attention_heads=5, num_key_value_heads=5)
    model = transformers.AutoModelForCausalLM.from_pretrained(source).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "model", max_shard_size="20KB")
    assert len(list((tmp_path / "model").glob("model-*.safetensors"))) > 2
    ranks = load_on_two_ranks(tmp_path / "model", tmp_path / "out", "float32")
    assert all(r["local_dtypes"] == ["torch.float32"] for r in ranks)
    replica = load_file(tmp_path / "out" / "replica_float32.safetensors")
    for name, tensor in load_model(tmp_path / "model").state_dict().items():
        assert torch.equal(replica[name], tensor), name


def test_a_truncated_checkpoint_is_the_same_error_on_every_rank(tmp_path):
    model_dir = make_hf_model_dir(tmp_path / "model", "llama")
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4000])  # the header intact, the last tensors cut
    ranks = load_on_two_ranks(model_dir, tmp_path / "out", "float32")
    # Every rank checks the headers against the file before any collective: none waits for another.
    for r in ranks:
        assert r["error"].startswith(f"{weights}: not a readable safetensors file"), r
