"""Decode attention over strided KV slots as a Triton split-K kernel (flash decoding), the CUDA default.

The SDPA decode of strided_slots.py reads every slot up to a padded length through a masked view; this kernel reads
each row's own slot up to its own length, once: one program per (row, KV head, split of the context), all the
query heads of that KV head (GQA) in one tile, an online softmax over key blocks, and partial results merged by
their log-sum-exp. Inputs are device tensors only and the grid depends on static sizes alone, so CUDA graphs
capture it (decode_graph.py). `check_decode_kernel` compares it with the SDPA path on this device before an engine
uses it. On CPU the tests run the same kernel through Triton's interpreter (`kernel=`).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from simpo_live.intmath import ceil_div

BLOCK_N = 64  # keys per inner step
TARGET_PROGRAMS = 2048  # split the context until rows x KV heads x splits reaches this (a few waves of SMs)


@triton.jit
def split_decode_kernel(q_ptr, k_ptr, v_ptr, slots_ptr, lengths_ptr, out_ptr, lse_ptr, slot_len, scale,
                        stride_qb, stride_qh, stride_kn, stride_kh, stride_ob, stride_oh, stride_os,
                        stride_lb, stride_lh,
                        GROUPS: tl.constexpr, BLOCK_G: tl.constexpr, HEAD_DIM: tl.constexpr,
                        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT_LEN: tl.constexpr, IEEE: tl.constexpr):
    row = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    length = tl.load(lengths_ptr + row)
    base = tl.load(slots_ptr + row).to(tl.int64) * slot_len  # pool row of the slot's position 0
    start = split * SPLIT_LEN
    end = tl.minimum(start + SPLIT_LEN, length)
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    heads = kv_head * GROUPS + g
    g_ok = g < GROUPS
    d_ok = d < HEAD_DIM
    q = tl.load(q_ptr + row * stride_qb + heads[:, None] * stride_qh + d[None, :],
                mask=g_ok[:, None] & d_ok[None, :], other=0.0)  # (BLOCK_G, BLOCK_D)
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    # A static trip count (blocks past `end` are fully masked and load nothing): the bounds stay compile-time
    # constants, which Triton's CPU interpreter also needs.
    for block in range(0, SPLIT_LEN, BLOCK_N):
        pos = start + block + n
        n_ok = pos < end
        offsets = (base + pos)[:, None] * stride_kn + kv_head * stride_kh + d[None, :]  # (BLOCK_N, BLOCK_D)
        kv_ok = n_ok[:, None] & d_ok[None, :]
        k = tl.load(k_ptr + offsets, mask=kv_ok, other=0.0)
        if IEEE:
            scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            scores = tl.dot(q, tl.trans(k))
        scores = tl.where(n_ok[None, :], scores * scale, float("-inf"))  # (BLOCK_G, BLOCK_N)
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # nothing attended yet: exp(-inf - 0) = 0, not NaN
        alpha = tl.exp(m_i - m_ref)
        p = tl.exp(scores - m_ref[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + offsets, mask=kv_ok, other=0.0)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    # A split past the row's length attended nothing: output 0 and lse -inf, so the merge gives it weight 0.
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    lse = tl.where(l_i > 0, m_i + tl.log(tl.where(l_i > 0, l_i, 1.0)), float("-inf"))
    out_offsets = row * stride_ob + heads[:, None] * stride_oh + split * stride_os + d[None, :]
    tl.store(out_ptr + out_offsets, out, mask=g_ok[:, None] & d_ok[None, :])
    tl.store(lse_ptr + row * stride_lb + heads * stride_lh + split, lse, mask=g_ok)


def split_length(rows: int, num_kv_heads: int, max_context: int) -> int:
    """Keys per split: enough splits for TARGET_PROGRAMS programs, a power-of-two number of blocks (few compiled
    variants), never shorter than a block."""
    splits = max(1, min(ceil_div(max_context, BLOCK_N), ceil_div(TARGET_PROGRAMS, rows * num_kv_heads)))
    return BLOCK_N * triton.next_power_of_2(ceil_div(ceil_div(max_context, splits), BLOCK_N))


def split_decode_attention(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, row_slots: torch.Tensor,
                           row_lengths: torch.Tensor, slot_len: int, max_context: int,
                           kernel=split_decode_kernel) -> torch.Tensor:
    """q (B, Hq, D) of the decode rows; cache_k, cache_v (N, Hkv, D) pools whose slot s holds positions at rows
    [s * slot_len, ...); row i attends to positions [0, row_lengths[i]) of slot row_slots[i], row_lengths[i] <=
    max_context. Returns (B, Hq, D) in q's dtype."""
    rows, num_heads, head_dim = q.shape
    num_kv_heads = cache_k.shape[1]
    groups = num_heads // num_kv_heads
    split_len = split_length(rows, num_kv_heads, max_context)
    splits = ceil_div(max_context, split_len)
    out = torch.empty(rows, num_heads, splits, head_dim, dtype=torch.float32, device=q.device)  # (B, Hq, S, D)
    lse = torch.empty(rows, num_heads, splits, dtype=torch.float32, device=q.device)  # (B, Hq, S)
    kernel[(rows, num_kv_heads, splits)](
        q, cache_k, cache_v, row_slots, row_lengths, out, lse, slot_len, 1.0 / math.sqrt(head_dim),
        q.stride(0), q.stride(1), cache_k.stride(0), cache_k.stride(1), out.stride(0), out.stride(1), out.stride(2),
        lse.stride(0), lse.stride(1),
        GROUPS=groups, BLOCK_G=max(16, triton.next_power_of_2(groups)), HEAD_DIM=head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)), BLOCK_N=BLOCK_N, SPLIT_LEN=split_len, IEEE=q.dtype == torch.float32)
    if splits == 1:
        return out[:, :, 0].to(q.dtype)
    weights = torch.exp(lse - lse.amax(dim=-1, keepdim=True))  # (B, Hq, S); split 0 always holds position 0
    merged = (out * weights.unsqueeze(-1)).sum(dim=2) / weights.sum(dim=-1, keepdim=True)
    return merged.to(q.dtype)  # (B, Hq, D)


def check_decode_kernel(num_heads: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                        device: torch.device, kernel=split_decode_kernel) -> str | None:
    """Run the kernel once against SDPA on random keys (rows of 1, 70 and 200 positions, several splits); None when
    it agrees, else what went wrong. Engines on CUDA call this before using the kernel (kv_cache.py)."""
    gen = torch.Generator(device=device).manual_seed(0)
    slot_len, lengths = 256, [1, 70, 200]
    pool = [torch.randn(len(lengths) * slot_len, num_kv_heads, head_dim, generator=gen, device=device).to(dtype)
            for _ in range(2)]  # k, v (N, Hkv, D)
    q = torch.randn(len(lengths), num_heads, head_dim, generator=gen, device=device).to(dtype)
    slots = torch.tensor([2, 0, 1], device=device)
    try:
        out = split_decode_attention(q, *pool, slots, torch.tensor(lengths, device=device), slot_len, slot_len,
                                     kernel=kernel)
    except Exception as error:  # a compile or launch failure on this GPU: reported, and SDPA is used instead
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    refs = []
    for row, (slot, length) in enumerate(zip(slots.tolist(), lengths)):
        keys, values = (t[slot * slot_len: slot * slot_len + length].transpose(0, 1) for t in pool)  # (Hkv, n, D)
        refs.append(torch.nn.functional.scaled_dot_product_attention(
            q[row].unsqueeze(1), keys, values, enable_gqa=num_heads != num_kv_heads).squeeze(1))  # (Hq, D)
    ref = torch.stack(refs).float()
    error = ((out.float() - ref).norm() / ref.norm()).item()
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    return None if error <= tolerance else f"relative error {error:.2e} against SDPA (tolerance {tolerance:.0e})"
