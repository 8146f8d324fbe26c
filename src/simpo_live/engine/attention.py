"""The KV cache tensors, their sizing, and the attention backend the model calls during an engine step.

Storage is one flat pool per layer, k and v each (num_kv_heads, pool_tokens, head_dim); a sequence owns one
contiguous extent (block_manager.py), so its context is a view. Attention per step:
- prefill: one SDPA per prompt chunk over its own context (packed tokens, no padding, batch-invariant);
- decode "slots" (CPU default, slot placement): the pool viewed as (slots, Hkv, slot_len, D) and one SDPA over the
  used slots with the query heads of each KV head folded into query rows, keys cut at round_up(longest, 16) and a
  length mask (a bf16 cache on CPU uses compact copies + bmm instead of SDPA, see `_bmm_slots`); contexts
  longer than LOOP_MIN_CONTEXT use the per-sequence loop instead (faster there);
- decode "loop": one exact-length SDPA per sequence;
- decode "gather" (CUDA default, run placement): gather contexts into (B, Hkv, round_up(longest, 16), D), one SDPA.
On CPU, which path a row takes depends only on its own context length, and SDPA gives bitwise equal rows for any
multiple-of-16 padding, so a row's arithmetic never depends on its batch-mates (research sections 2 and 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from simpo_live.model.args import ModelArgs

# bf16 bmm decode path: slots per compact copy are chosen so one copy is ~this many bytes and stays in the
# core's cache (measured per round at 256 slots: unchunked copies 176-209 ms at ~450 keys, 16-32 slot chunks 73-77,
# SDPA bf16 100, SDPA fp32 105-113; at ~150 keys 64-slot chunks were best).
BMM_CHUNK_BYTES = 1_200_000
BMM_DTYPES = (torch.bfloat16,)  # cache dtypes that take the bmm path on CPU (others: SDPA)
LOOP_MIN_CONTEXT = 1024  # research 2.1: the exact-length loop beats the padded batch from ~1k tokens


def kv_bytes_per_token(args: ModelArgs, dtype: torch.dtype) -> int:
    element_size = torch.empty((), dtype=dtype).element_size()
    return 2 * args.num_hidden_layers * args.num_key_value_heads * args.head_dim * element_size


def free_memory_bytes(device: torch.device) -> int:
    """Free device memory on CUDA; MemAvailable from /proc/meminfo on CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 << 30  # no /proc (e.g. macOS): assume a modest 8 GiB rather than guess high


class KVCache:
    """Keys and values of every cached token, one pair of tensors per layer (never one stacked tensor: slicing
    a layer out of a stacked cache misbehaves under torch.compile, research section 2.6)."""

    def __init__(self, args: ModelArgs, pool_tokens: int, dtype: torch.dtype, device: torch.device):
        shape = (args.num_key_value_heads, pool_tokens, args.head_dim)  # (Hkv, N, D)
        # empty, not zeros: on CPU untouched pool memory is never committed, and every position is written
        # before it is read.
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.num_bytes = kv_bytes_per_token(args, dtype) * pool_tokens
        self.finite_len: dict[int, int] = {}  # slots mode: slot -> positions [0, n) that hold finite numbers

    def note_written(self, slot: int, end: int) -> None:
        """Positions up to `end` of `slot` are (being) written this step: finite from now on."""
        self.finite_len[slot] = max(self.finite_len.get(slot, 0), end)

    def make_slots_finite(self, slot_len: int, num_slots: int, upto: int) -> None:
        """Zero positions [finite_len, upto) of slots [0, num_slots) before a batched read up to `upto`. The read
        covers positions past a row's length; they are masked, but a masked position still adds 0 * value, so
        it must not hold NaN garbage. A slot's occupant writes from position 0, so live positions are always
        below finite_len and are never cleared; on CPU memory is touched, hence committed, only as reads reach."""
        # Runs of adjacent slots with the same finite length are cleared with one call per pool: usually every
        # slot grew to the same padded length, so this is 2 * layers calls instead of slots * 2 * layers.
        starts = [self.finite_len.get(slot, 0) for slot in range(num_slots)]
        first = 0
        while first < num_slots:
            last = first + 1
            while last < num_slots and starts[last] == starts[first]:
                last += 1
            if starts[first] < upto:
                for pool in self.k + self.v:
                    pool.view(pool.shape[0], -1, slot_len, pool.shape[-1])[:, first:last, starts[first]:upto].zero_()
                for slot in range(first, last):
                    self.finite_len[slot] = upto
            first = last

    def free(self) -> None:
        self.k, self.v = [], []


@dataclass
class PrefillSegment:
    """Packed rows [row_start, row_end) are prompt positions [context_start, ...) of the sequence at `kv_start`."""

    row_start: int
    row_end: int
    kv_start: int
    context_start: int


@dataclass
class DecodePlan:
    """Decode rows of one step. `spans[i]` = (kv_start, context length incl. the new token) of decode row i."""

    spans: list[tuple[int, int]]
    write_index: torch.Tensor  # (B,) pool position of each row's new token
    loop_rows: list[int]  # rows attended one by one (exact length)
    batch_rows: torch.Tensor | None = None  # (Bb,) rows attended in the one batched call
    batch_slots: torch.Tensor | None = None  # (Bb,) their slots (slots mode)
    gather_index: torch.Tensor | None = None  # (Bb, Lpad) pool positions (gather mode)
    mask: torch.Tensor | None = None  # (slots or Bb, 1, 1, Lpad) True where attended
    num_slots: int = 0  # slots mode: attend over slots [0, num_slots)
    padded_len: int = 0
    all_rows: bool = False  # batch_rows is every row in order: no gather or scatter of rows needed
    slots_in_order: bool = False  # slots mode: row j of the batch is slot j and every slot is used
    bias: torch.Tensor | None = None  # additive form of `mask`, made on first use (bf16 bmm path)


def plan_decode(spans: list[tuple[int, int]], mode: str, slot_len: int, device: torch.device) -> DecodePlan:
    """Metadata for `mode` in ("loop", "slots", "gather"); built once per step, used by every layer."""
    write = torch.tensor([start + length - 1 for start, length in spans], device=device)
    if mode == "loop":
        return DecodePlan(spans, write, loop_rows=list(range(len(spans))))
    loop_rows = [i for i, (_, n) in enumerate(spans) if mode == "slots" and n > LOOP_MIN_CONTEXT]
    rows = [i for i, (_, n) in enumerate(spans) if not (mode == "slots" and n > LOOP_MIN_CONTEXT)]
    plan = DecodePlan(spans, write, loop_rows)
    if not rows:
        return plan
    plan.batch_rows = torch.tensor(rows, device=device)
    plan.all_rows = len(rows) == len(spans)
    plan.padded_len = -(-max(spans[i][1] for i in rows) // 16) * 16  # any multiple of 16: equal rows
    if mode == "slots":
        plan.padded_len = min(plan.padded_len, slot_len)  # only when the whole cache is one short slot
    offsets = torch.arange(plan.padded_len, device=device)
    if mode == "slots":
        slots = [spans[i][0] // slot_len for i in rows]
        plan.num_slots = max(slots) + 1
        plan.batch_slots = torch.tensor(slots, device=device)
        plan.slots_in_order = slots == list(range(plan.num_slots))
        lengths = torch.ones(plan.num_slots, dtype=torch.long, device=device)  # idle slots attend to 1 position
        lengths[plan.batch_slots] = torch.tensor([spans[i][1] for i in rows], device=device)
        plan.mask = (offsets < lengths.unsqueeze(-1)).view(plan.num_slots, 1, 1, plan.padded_len)
    else:
        starts = torch.tensor([spans[i][0] for i in rows], device=device).unsqueeze(-1)
        lengths = torch.tensor([spans[i][1] for i in rows], device=device).unsqueeze(-1)
        # Past a row's length the index is clamped to its last token; the mask hides those columns.
        plan.gather_index = starts + torch.minimum(offsets, lengths - 1)  # (Bb, Lpad)
        plan.mask = (offsets < lengths).view(len(rows), 1, 1, plan.padded_len)
    return plan


@dataclass
class StepAttention:
    """The model's attention backend for one step: rows [0, B) are decode tokens, then prefill segments, then
    padding rows (ignored, output zero). Built by the runner, passed to the model as an argument."""

    cache: KVCache
    decode: DecodePlan | None
    prefill: list[PrefillSegment]
    slot_len: int = 0
    _masks: dict = field(default_factory=dict)

    def __call__(self, layer_index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cache_k, cache_v = self.cache.k[layer_index], self.cache.v[layer_index]  # (Hkv, N, D)
        model_dtype = q.dtype  # the cache may be stored narrower than the model computes (e.g. bf16 KV)
        q, k, v = (t[0].to(cache_k.dtype) for t in (q, k, v))  # (T, Hq, D), (T, Hkv, D), (T, Hkv, D)
        pieces = []
        if self.decode is not None:
            pieces.append(self._decode(q, k, v, cache_k, cache_v))
        for seg in self.prefill:
            pieces.append(self._prefill(seg, q, k, v, cache_k, cache_v))
        num_rows = q.shape[0] - sum(p.shape[0] for p in pieces)
        if num_rows:
            pieces.append(q.new_zeros(num_rows, *q.shape[1:]))
        return torch.cat(pieces).unsqueeze(0).to(model_dtype)  # (1, T, Hq, D)

    def _decode(self, q, k, v, cache_k, cache_v) -> torch.Tensor:
        plan = self.decode
        nd = len(plan.spans)
        num_heads, head_dim = q.shape[1], q.shape[2]
        num_kv_heads = k.shape[1]
        cache_k.index_copy_(1, plan.write_index, k[:nd].transpose(0, 1))  # cheaper than an index_put
        cache_v.index_copy_(1, plan.write_index, v[:nd].transpose(0, 1))
        q_fold = q[:nd].view(nd, num_kv_heads, num_heads // num_kv_heads, head_dim)  # GQA folded into rows
        out = q.new_empty(nd, num_heads, head_dim)
        if plan.batch_rows is not None:
            # The gathers and scatters below are skipped in the common case (every row batched, row j in slot j).
            q_rows = q_fold if plan.all_rows else q_fold.index_select(0, plan.batch_rows)
            if plan.batch_slots is not None:
                def slot_view(pool):  # (Hkv, N, D) -> (slots, Hkv, Lpad, D), a view: no copy
                    return pool.view(num_kv_heads, -1, self.slot_len, head_dim).transpose(0, 1)[
                        :plan.num_slots, :, :plan.padded_len]
                if plan.slots_in_order:
                    q_slots = q_rows
                else:
                    q_slots = q_fold.new_zeros(plan.num_slots, *q_fold.shape[1:])
                    q_slots[plan.batch_slots] = q_rows
                if cache_k.dtype in BMM_DTYPES and cache_k.device.type == "cpu":
                    result = self._bmm_slots(q_slots, cache_k, cache_v)
                else:
                    result = F.scaled_dot_product_attention(q_slots, slot_view(cache_k), slot_view(cache_v),
                                                            attn_mask=plan.mask)
                if not plan.slots_in_order:
                    result = result[plan.batch_slots]
            else:
                keys = cache_k[:, plan.gather_index].transpose(0, 1)  # (Bb, Hkv, Lpad, D)
                values = cache_v[:, plan.gather_index].transpose(0, 1)
                result = F.scaled_dot_product_attention(q_rows, keys, values, attn_mask=plan.mask)
            if plan.all_rows:
                out = result.reshape(nd, num_heads, head_dim)
            else:
                out[plan.batch_rows] = result.reshape(-1, num_heads, head_dim)
        for i in plan.loop_rows:
            start, length = plan.spans[i]
            out[i] = F.scaled_dot_product_attention(
                q_fold[i], cache_k[:, start:start + length], cache_v[:, start:start + length]).view(num_heads, head_dim)
        return out

    def _bmm_slots(self, q_slots: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor) -> torch.Tensor:
        """Batched decode attention for a bf16 cache on CPU: per KV head and chunk of slots, copy the keys (values)
        into a compact (chunk, Lpad, D) block and run two bf16 bmm calls with an fp32 masked softmax between them.
        oneDNN's bf16 bmm is fast only on compact batches (a strided slot view is ~5x slower than copy + bmm;
        CPU SDPA in bf16 is slower than in fp32). Scores are
        rounded to bf16 by the bmm (fp32 accumulation inside); outputs are still bitwise independent of the
        batch and of the multiple-of-16 padding (checked), as the masked keys get exactly zero weight."""
        plan = self.decode
        num_kv_heads, head_dim = cache_k.shape[0], cache_k.shape[-1]
        if plan.bias is None:  # shared by all layers of the step
            plan.bias = torch.zeros(plan.mask.shape, device=q_slots.device).masked_fill_(
                ~plan.mask, float("-inf")).view(plan.num_slots, 1, plan.padded_len)
        scale = head_dim ** -0.5
        out = q_slots.new_empty(q_slots.shape)
        # Chunks of slots, so the compact copy is still in cache when bmm reads it (a row's result does not depend
        # on which chunk or how many slots it shares a bmm with: checked bitwise for batches of 1 to 256).
        step = max(8, BMM_CHUNK_BYTES // (plan.padded_len * head_dim * cache_k.element_size()) // 8 * 8)
        for h in range(num_kv_heads):
            slots_k = cache_k[h].view(-1, self.slot_len, head_dim)
            slots_v = cache_v[h].view(-1, self.slot_len, head_dim)
            for lo in range(0, plan.num_slots, step):
                hi = min(lo + step, plan.num_slots)
                keys = slots_k[lo:hi, :plan.padded_len].contiguous()  # (n, Lpad, D), compact
                scores = torch.bmm(q_slots[lo:hi, h], keys.transpose(1, 2)).float()  # (n, G, Lpad)
                probs = torch.softmax(scores.mul_(scale).add_(plan.bias[lo:hi]), -1).to(cache_v.dtype)
                out[lo:hi, h] = torch.bmm(probs, slots_v[lo:hi, :plan.padded_len].contiguous())  # (n, G, D)
        return out  # (slots, Hkv, G, D)

    def _prefill(self, seg: PrefillSegment, q, k, v, cache_k, cache_v) -> torch.Tensor:
        n = seg.row_end - seg.row_start
        groups = q.shape[1] // k.shape[1]
        k_new = k[seg.row_start:seg.row_end].transpose(0, 1)  # (Hkv, n, D)
        v_new = v[seg.row_start:seg.row_end].transpose(0, 1)
        lo = seg.kv_start + seg.context_start
        cache_k[:, lo:lo + n] = k_new
        cache_v[:, lo:lo + n] = v_new
        q_seg = q[seg.row_start:seg.row_end].transpose(0, 1)  # (Hq, n, D)
        if seg.context_start == 0:
            out = F.scaled_dot_product_attention(q_seg, k_new, v_new, is_causal=True, enable_gqa=groups > 1)
        else:
            context = seg.context_start + n
            # A later chunk sees the cached prompt before it plus itself causally: a bottom-right aligned mask.
            key = (n, context)
            if key not in self._masks:
                rows = torch.arange(n, device=q.device).unsqueeze(-1) + seg.context_start
                self._masks[key] = torch.arange(context, device=q.device).unsqueeze(0) <= rows  # (n, context)
            out = F.scaled_dot_product_attention(
                q_seg, cache_k[:, seg.kv_start:seg.kv_start + context], cache_v[:, seg.kv_start:seg.kv_start + context],
                attn_mask=self._masks[key], enable_gqa=groups > 1)
        return out.transpose(0, 1)  # (n, Hq, D)
