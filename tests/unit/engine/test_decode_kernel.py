"""The Triton decode attention (engine/decode_kernel.py) against SDPA, and its place in the engine. Without CUDA
the kernel runs through Triton's CPU interpreter (tests/conftest.py), the same program a GPU compiles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import EOS

from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams
from simpo_live.engine import kv_cache
from simpo_live.engine.decode_kernel import check_decode_kernel, split_decode_attention, split_length
from simpo_live.engine.kv_cache import build_storage, pick_decode_kernel
from simpo_live.engine.strided_slots import StridedSlotCache
from simpo_live.model.args import ModelArgs

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def per_row_sdpa(q, cache_k, cache_v, slots, lengths, slot_len):
    outs = []
    for row, (slot, length) in enumerate(zip(slots.tolist(), lengths.tolist())):
        keys, values = (t[slot * slot_len: slot * slot_len + length].transpose(0, 1) for t in (cache_k, cache_v))
        outs.append(F.scaled_dot_product_attention(q[row].unsqueeze(1), keys, values,
                                                   enable_gqa=q.shape[1] != keys.shape[0]).squeeze(1))
    return torch.stack(outs)  # (B, Hq, D)


@pytest.mark.parametrize("heads", [(8, 2, 16), (4, 4, 24), (6, 1, 64)], ids=["gqa", "mha-odd-dim", "mqa"])
@pytest.mark.parametrize("max_context", [300, 320])
def test_kernel_equals_sdpa_over_each_rows_own_length(heads, max_context):
    num_heads, num_kv_heads, head_dim = heads
    gen = torch.Generator().manual_seed(1)
    slot_len, num_slots = 320, 6
    cache_k, cache_v = (torch.randn(num_slots * slot_len, num_kv_heads, head_dim, generator=gen).to(DEVICE)
                        for _ in range(2))
    q = torch.randn(5, num_heads, head_dim, generator=gen).to(DEVICE)
    slots = torch.tensor([4, 0, 2, 5, 1], device=DEVICE)
    lengths = torch.tensor([1, 17, 64, 100, 300], device=DEVICE)  # one key, a partial block, exact blocks, many
    assert max_context // split_length(5, num_kv_heads, max_context) > 1  # several splits merged by their lse
    out = split_decode_attention(q, cache_k, cache_v, slots, lengths, slot_len, max_context)
    torch.testing.assert_close(out, per_row_sdpa(q, cache_k, cache_v, slots, lengths, slot_len),
                               atol=2e-6, rtol=2e-5)


def test_a_one_block_context_takes_one_split():
    """A context of one block is never split: the single-split path (no merge)."""
    gen = torch.Generator().manual_seed(2)
    rows, slot_len = 40, 64
    assert split_length(rows, 2, slot_len) == slot_len
    cache_k, cache_v = (torch.randn(rows * slot_len, 2, 16, generator=gen).to(DEVICE) for _ in range(2))
    q = torch.randn(rows, 4, 16, generator=gen).to(DEVICE)
    slots = torch.randperm(rows, generator=gen).to(DEVICE)
    lengths = torch.randint(1, slot_len + 1, (rows,), generator=gen).to(DEVICE)
    out = split_decode_attention(q, cache_k, cache_v, slots, lengths, slot_len, slot_len)
    torch.testing.assert_close(out, per_row_sdpa(q, cache_k, cache_v, slots, lengths, slot_len),
                               atol=2e-6, rtol=2e-5)


def test_strided_cache_decode_with_the_kernel_equals_the_masked_view():
    args = ModelArgs(vocab_size=16, hidden_size=64, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, max_position_embeddings=128)
    gen = torch.Generator().manual_seed(3)
    caches = [StridedSlotCache(args, 4, 96, torch.float32, DEVICE, scratch_slot=True, decode_kernel=kernel)
              for kernel in (None, split_decode_attention)]
    prefix = torch.randn(4 * 96, 2, 16, generator=gen).to(DEVICE)
    for cache in caches:
        cache.k[0][:4 * 96].copy_(prefix)
        cache.v[0][:4 * 96].copy_(prefix.flip(0))
    q, k, v = (torch.randn(3, heads, 16, generator=gen).to(DEVICE) for heads in (4, 2, 2))
    spans = [(2, 40), (0, 1), (3, 96)]
    outs = [cache.decode(0, cache.plan_decode(spans), q, k, v) for cache in caches]
    torch.testing.assert_close(outs[1], outs[0], atol=2e-6, rtol=2e-5)
    bucket = [cache.plan_bucket(torch.tensor([2, 0, 3, 4], device=DEVICE), torch.tensor([41, 2, 96, 1], device=DEVICE),
                                128) for cache in caches]  # a decode-graph bucket: a padded row on the scratch slot
    q4, k4, v4 = (torch.cat([t, t[:1]]) for t in (q, k, v))
    outs = [cache.decode(0, plan, q4, k4, v4) for cache, plan in zip(caches, bucket)]
    torch.testing.assert_close(outs[1], outs[0], atol=2e-6, rtol=2e-5)


def test_engine_outputs_are_the_same_with_the_kernel(tiny_model, prompts):
    """Greedy tokens of bucketed decode rounds (the CUDA graph path, uncaptured) with the kernel in every layer."""
    def with_kernel(*args):
        storage = build_storage(*args)
        storage.cache.decode_kernel = split_decode_attention
        return storage

    requests = [Request(i, p, SamplingParams(max_new_tokens=4, stop_token_ids=(EOS,)))
                for i, p in enumerate(prompts[:3])]
    config = EngineConfig(kv_layout="strided_slots", decode_graphs="on", max_seqs=4)
    outputs = []
    for factory in (build_storage, with_kernel):
        with Engine(tiny_model, None, config, storage_factory=factory) as engine:
            outputs.append([c.token_ids for c in engine.generate(requests)])
    assert outputs[1] == outputs[0]


def test_the_check_passes_here_and_reports_a_kernel_that_fails():
    assert check_decode_kernel(4, 2, 16, torch.float32, DEVICE) is None

    class Broken:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise RuntimeError("PTX assembly failed\nmore detail")
            return launch

    assert check_decode_kernel(4, 2, 16, torch.float32, DEVICE, kernel=Broken()) == "RuntimeError: PTX assembly failed"


ARGS = ModelArgs(vocab_size=16, hidden_size=64, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_position_embeddings=128)
CUDA = torch.device("cuda", 0)  # a descriptor only: the choice is made before any CUDA call


def test_the_kernel_is_the_cuda_default_and_never_runs_on_cpu(monkeypatch):
    assert pick_decode_kernel(EngineConfig(), ARGS, torch.float32, torch.device("cpu")) is None
    with pytest.raises(ValueError, match="decode_attention 'triton' needs a CUDA device"):
        pick_decode_kernel(EngineConfig(decode_attention="triton"), ARGS, torch.float32, torch.device("cpu"))
    monkeypatch.setattr(kv_cache, "decode_kernel_problem", lambda *args: None)
    assert pick_decode_kernel(EngineConfig(), ARGS, torch.bfloat16, CUDA) is split_decode_attention
    assert pick_decode_kernel(EngineConfig(decode_attention="sdpa"), ARGS, torch.bfloat16, CUDA) is None


def test_a_kernel_that_fails_its_check_falls_back_with_a_warning_or_errors_when_asked_for(monkeypatch):
    monkeypatch.setattr(kv_cache, "decode_kernel_problem", lambda *args: "RuntimeError: no sm_90 target")
    with pytest.warns(RuntimeWarning, match="Triton decode attention is off on this device .RuntimeError: no sm_90"):
        assert pick_decode_kernel(EngineConfig(), ARGS, torch.bfloat16, CUDA) is None
    with pytest.raises(ValueError, match="decode_attention 'triton' cannot run here: RuntimeError: no sm_90"):
        pick_decode_kernel(EngineConfig(decode_attention="triton"), ARGS, torch.bfloat16, CUDA)
