"""Decode attention over the chunk-major slot cache: equal to exact-length SDPA per sequence, and bitwise
independent of which other slots run beside a row (chunk ranges, idle slots, padding to more chunks)."""

import pytest
import torch
import torch.nn.functional as F

from simpo_live.engine.chunked_slots import SLOT_CHUNK, SlotCache, plan_slot_decode, slot_decode_attention
from simpo_live.model.args import ModelArgs

ARGS = ModelArgs(vocab_size=32, hidden_size=64, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
LENGTHS = [5, 3 * SLOT_CHUNK + 7, 1, SLOT_CHUNK, SLOT_CHUNK + 1, 40, 2 * SLOT_CHUNK]  # slot i holds LENGTHS[i]


def filled_cache(dtype):
    """A cache whose slot i holds LENGTHS[i] - 1 random tokens; returns it with the new token's q, k, v per slot."""
    g = torch.Generator().manual_seed(0)
    cache = SlotCache(ARGS, num_slots=len(LENGTHS), slot_len=4 * SLOT_CHUNK, dtype=dtype, device=torch.device("cpu"))
    history = []
    for slot, n in enumerate(LENGTHS):
        k, v = (torch.randn(n, 2, 16, generator=g).to(dtype) for _ in range(2))
        cache.write(0, slot, 0, k[:-1], v[:-1])
        history.append((k, v))
    q = torch.randn(len(LENGTHS), 4, 16, generator=g).to(dtype)
    return cache, q, history


def attend(cache, q, history, slots):
    """Decode rows for `slots` (in that order) against `cache`; the new token is each slot's last history entry."""
    k = torch.stack([history[s][0][-1] for s in slots])
    v = torch.stack([history[s][1][-1] for s in slots])
    plan = plan_slot_decode(cache, slots, [LENGTHS[s] for s in slots])
    return slot_decode_attention(cache, 0, plan, q[slots], k, v)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_slot_decode_equals_exact_length_sdpa(dtype, tolerance):
    cache, q, history = filled_cache(dtype)
    out = attend(cache, q, history, list(range(len(LENGTHS))))
    for slot, (k, v) in enumerate(history):
        expected = F.scaled_dot_product_attention(q[slot].float().view(2, 2, 16), k.float().transpose(0, 1),
                                                  v.float().transpose(0, 1)).view(4, 16)
        torch.testing.assert_close(out[slot].float(), expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_row_does_not_depend_on_the_other_slots(dtype):
    cache, q, history = filled_cache(dtype)
    everything = attend(cache, q, history, list(range(len(LENGTHS))))
    # Alone (slot 1 is the longest: every chunk reads only it), with idle slots before it, reordered, subsets.
    for slots in ([1], [0], [6], [3, 1], [5, 2, 0], [6, 5, 4, 3, 2, 1, 0], [2, 4]):
        fresh_cache, _, _ = filled_cache(dtype)
        out = attend(fresh_cache, q, history, slots)
        for row, slot in enumerate(slots):
            assert torch.equal(out[row], everything[slot]), (slots, slot)


def test_writes_land_at_their_positions_across_chunks():
    cache, _, history = filled_cache(torch.float32)
    keys, values = cache.context(0, 1, LENGTHS[1] - 1)
    assert torch.equal(keys, history[1][0][:-1].transpose(0, 1))
    assert torch.equal(values, history[1][1][:-1].transpose(0, 1))
    assert len(cache.k[0]) == 4  # chunks exist only as far as some slot reached
    with pytest.raises(RuntimeError, match="past the slot length"):
        cache.write(0, 0, 4 * SLOT_CHUNK, history[0][0][:1], history[0][1][:1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gathered_chunks_equal_sliced_chunks(dtype, monkeypatch):
    import simpo_live.engine.chunked_slots as chunked_slots

    cache, q, history = filled_cache(dtype)
    sliced = attend(cache, q, history, list(range(len(LENGTHS))))
    monkeypatch.setattr(chunked_slots, "GATHER_BELOW", 2.0)  # every chunk read through an index
    cache, _, _ = filled_cache(dtype)
    plan = plan_slot_decode(cache, list(range(len(LENGTHS))), LENGTHS)
    assert all(index is not None for _, _, index in plan.chunk_reads)
    assert torch.equal(attend(cache, q, history, list(range(len(LENGTHS)))), sliced)
