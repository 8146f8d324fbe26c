"""Attention over a packed stream of whole sequences, forward + backward, on CPU: which way is fastest.

Candidates: one causal SDPA call per sequence (`loop`); scatter into a right-padded (n, Lmax) batch, one causal
SDPA, gather back (`padded`); one SDPA over the stream with a block-diagonal causal boolean mask (`blockdiag`);
FlexAttention with a document mask (`flex`: tried once; torch 2.13 has no flex backward on CPU). One JSON line per
case on stdout, ms per call (median of repeats), the tiny model's attention shape (4 query / 2 KV heads, head 64).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_packed_attention.py
"""

from __future__ import annotations

import json
import statistics
import time

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 64
# name -> sequence lengths: the default preset's micro-batch (32 rows of ~20-40 tokens) and 8 pairs up to 512.
CASES = {
    "preset_32x30": [20 + (7 * i) % 21 for i in range(32)],
    "bench_16x512": [120 + (137 * i) % 390 for i in range(16)],
}


def attend_loop(q, k, v, bounds):
    """model/packed_attention.py's CPU path."""
    lengths = [e - s for s, e in bounds]
    pieces = (t.split(lengths, dim=2) for t in (q, k, v))
    outs = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=True) for qs, ks, vs in zip(*pieces)]
    return torch.cat(outs, dim=2)


def attend_padded(q, k, v, bounds):
    lengths = [e - s for s, e in bounds]
    width = max(lengths)
    index = torch.cat([torch.arange(s, s + width).clamp(max=e - 1) for s, e in bounds])  # (n * Lmax,)
    keep = torch.cat([torch.arange(width) < n for n in lengths])
    pad = lambda t: t[0, :, index].view(t.shape[1], len(bounds), width, HEAD_DIM).transpose(0, 1)  # noqa: E731
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), is_causal=True, enable_gqa=True)
    return out.transpose(0, 1).reshape(HEADS, -1, HEAD_DIM)[:, keep][None]


def attend_blockdiag(q, k, v, bounds):
    doc = torch.cat([torch.full((e - s,), i) for i, (s, e) in enumerate(bounds)])
    pos = torch.arange(doc.numel())
    mask = (doc[:, None] == doc[None, :]) & (pos[:, None] >= pos[None, :])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


def time_fwd_bwd(fn, q, k, v, bounds, repeats=7) -> float:
    times = []
    for _ in range(repeats + 1):
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        start = time.perf_counter()
        fn(*leaves, bounds).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1e3


def flex_backward_supported(q, k, v) -> str:
    from torch.nn.attention.flex_attention import flex_attention

    try:
        flex_attention(*(t.detach().requires_grad_() for t in (q, k, v)), enable_gqa=True).sum().backward()
    except NotImplementedError as e:
        return str(e).split(".")[0]
    return "ok"


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, lengths in CASES.items():
        total = sum(lengths)
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        bounds = [(s, s + n) for s, n in zip(starts, lengths)]
        q = torch.randn(1, HEADS, total, HEAD_DIM)
        k, v = torch.randn(1, KV_HEADS, total, HEAD_DIM), torch.randn(1, KV_HEADS, total, HEAD_DIM)
        reference = attend_loop(q, k, v, bounds)
        row = {"case": name, "sequences": len(lengths), "tokens": total, "threads": 1}
        for label, fn in (("loop", attend_loop), ("padded", attend_padded), ("blockdiag", attend_blockdiag)):
            assert torch.allclose(fn(q, k, v, bounds), reference, atol=1e-5), label
            row[f"{label}_ms"] = round(time_fwd_bwd(fn, q, k, v, bounds), 2)
        row["flex_cpu_backward"] = flex_backward_supported(q, k, v)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
