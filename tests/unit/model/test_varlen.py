"""The CUDA-only varlen branch of packed attention, run on CPU: stand-ins with the exact signature of each supported
torch's `varlen_attn` (and of the installed one) compute the reference attention, so the adapter's calls must bind
to each signature and give per-sequence causal attention, GQA included."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from simpo_live.model.packed_attention import PackedAttention
from simpo_live.model.varlen import adapt_varlen, installed_varlen_attn

LENGTHS = [5, 1, 9, 3]


def reference_varlen(query, key, value, cu_seq_q, cu_seq_k, *, causal: bool, enable_gqa: bool):
    """What FlashAttention varlen computes, by SDPA per sequence; refuses what the real kernel would."""
    if not causal:
        raise AssertionError("packed training must ask for causal attention")
    if key.shape[1] != query.shape[1] and not enable_gqa:
        raise RuntimeError("this varlen_attn has no GQA: key must have as many heads as query")
    assert torch.equal(cu_seq_q, cu_seq_k) and cu_seq_q.dtype == torch.int32
    bounds = cu_seq_q.tolist()
    outs = [F.scaled_dot_product_attention(*(t[lo:hi].transpose(0, 1)[None] for t in (query, key, value)),
                                           is_causal=True, enable_gqa=enable_gqa)[0].transpose(0, 1)
            for lo, hi in zip(bounds, bounds[1:])]
    return torch.cat(outs)


# The public signatures, as each torch release defines them.
def varlen_attn_2_10(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
    return reference_varlen(query, key, value, cu_seq_q, cu_seq_k, causal=is_causal, enable_gqa=False)


def varlen_attn_2_11(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                     window_size=(-1, -1)):
    return reference_varlen(query, key, value, cu_seq_q, cu_seq_k, causal=tuple(window_size) == (-1, 0),
                            enable_gqa=False)


def varlen_attn_2_13(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                     window_size=(-1, -1), enable_gqa=False, seqused_k=None, block_table=None, num_splits=None):
    return reference_varlen(query, key, value, cu_seq_q, cu_seq_k, causal=tuple(window_size) == (-1, 0),
                            enable_gqa=enable_gqa)


def with_installed_signature(calls: list):
    """A stand-in that accepts exactly what the installed torch's varlen_attn accepts (a call it would refuse
    raises TypeError here too) and records the keyword arguments it was given."""
    signature = inspect.signature(installed_varlen_attn())

    def stand_in(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        calls.append(kwargs)
        values = {**{name: p.default for name, p in signature.parameters.items()}, **bound.arguments}
        causal = values.get("is_causal", False) or tuple(values.get("window_size", (-1, -1))) == (-1, 0)
        return reference_varlen(*args[:5], causal=causal, enable_gqa=values.get("enable_gqa", False))

    stand_in.__signature__ = signature
    return stand_in


def packed_qkv(num_heads: int, num_kv_heads: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    total = sum(LENGTHS)
    return [torch.randn(1, total, heads, 8, generator=gen, requires_grad=True)
            for heads in (num_heads, num_kv_heads, num_kv_heads)]  # (1, T, H, D)


def attention_and_grads(attention: PackedAttention, qkv):
    out = attention(0, *qkv)
    grads = torch.autograd.grad(out.square().sum(), qkv)
    return out, grads


@pytest.mark.parametrize("version", ["2.10", "2.11", "2.13", "installed"])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)], ids=["mha", "gqa", "mqa"])
def test_each_supported_varlen_signature_gives_per_sequence_causal_attention(version, heads):
    fn = {"2.10": varlen_attn_2_10, "2.11": varlen_attn_2_11, "2.13": varlen_attn_2_13}.get(version)
    fn = fn or with_installed_signature([])
    kernel = adapt_varlen(fn)
    assert kernel is not None
    qkv = packed_qkv(*heads)
    out, grads = attention_and_grads(PackedAttention(LENGTHS, torch.device("cpu"), kernel=kernel), qkv)
    ref_out, ref_grads = attention_and_grads(PackedAttention(LENGTHS, torch.device("cpu")), qkv)
    assert out.shape == ref_out.shape == qkv[0].shape
    torch.testing.assert_close(out, ref_out)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref)


def test_the_installed_torch_accepts_every_argument_the_adapter_passes():
    """Fails when the CUDA-only call passes an argument this torch's varlen_attn does not take."""
    assert installed_varlen_attn() is not None, "torch >= 2.10 is supported; it has torch.nn.attention.varlen"
    calls: list[dict] = []
    kernel = adapt_varlen(with_installed_signature(calls))
    for heads in [(4, 4), (4, 2)]:
        q, k, v = (t.detach()[0] for t in packed_qkv(*heads))
        cu = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
        assert kernel(q, k, v, cu, 9).shape == q.shape
    assert len(calls) == 2 and all(calls)  # the causal flag always travels as a keyword


def test_a_varlen_without_a_causal_argument_is_no_kernel():
    def no_causal(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k):
        raise AssertionError("never called")

    assert adapt_varlen(no_causal) is None
