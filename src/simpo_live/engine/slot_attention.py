"""Decode attention over the chunk-major slot cache (kv_cache.SlotCache): one query token per running sequence.

Per layer and position chunk c, two bmm calls run over the compact range of slots that reach chunk c: scores
q . K_c into a (chunks, slots, heads, G, 64) buffer, then, after one fp32 softmax over every chunk of a row, the
probabilities times V_c, summed chunk by chunk in fp32. GQA folds the G query heads of a KV head into the rows of
its matrix.

Batch invariance (tested): a row's result depends only on its own query, keys and length. Each bmm matrix is
computed independently of the others in the batch; positions past a row's length are masked to -inf, so they get
exactly zero weight and add exactly zero (chunks are zero-initialised, so masked values are finite); softmax over
any whole number of chunks gives bitwise equal rows; chunk sums run in chunk order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simpo_live.engine.kv_cache import SLOT_CHUNK, SlotCache, TokenWrite

GATHER_BELOW = 0.4  # a chunk read by fewer than this share of the slots in its range is gathered, not sliced


@dataclass
class SlotDecodePlan:
    """Decode rows of one step. Row i is the sequence in slot `slots[i]`, with `lengths[i]` tokens incl. the new one.
    Slots [0, num_slots) are attended; idle slots among them attend to their position 0 (results unused)."""

    lengths: list[int]
    writes: list[TokenWrite]
    num_slots: int
    chunk_reads: list[tuple[int, int, torch.Tensor | None]]  # chunk c: slots [lo, hi), or the slots in an index
    mask_from: int  # every slot is unmasked before this position (a multiple of SLOT_CHUNK)
    masked: torch.Tensor  # (num_slots, 1, 1, chunks * SLOT_CHUNK - mask_from) True past a slot's length
    row_slots: torch.Tensor | None  # None when row i is slot i for every slot

    @property
    def num_rows(self) -> int:
        return len(self.lengths)


def plan_slot_decode(cache: SlotCache, slots: list[int], lengths: list[int]) -> SlotDecodePlan:
    num_slots = max(slots) + 1
    slot_lengths = [1] * num_slots
    for slot, length in zip(slots, lengths):
        slot_lengths[slot] = length
    num_chunks = -(-max(lengths) // SLOT_CHUNK)
    reads = []
    for chunk in range(num_chunks):
        reaching = [s for s, n in enumerate(slot_lengths) if n > chunk * SLOT_CHUNK]
        lo, hi = reaching[0], reaching[-1] + 1
        # Few long sequences among many short ones (the tail of an eval): copying out the few beats reading
        # the whole range in place.
        sparse = len(reaching) < GATHER_BELOW * (hi - lo)
        reads.append((lo, hi, torch.tensor(reaching, device=cache.device) if sparse else None))
    # Masking costs a pass over the scores, so it covers only the chunks where some slot ends.
    mask_from = min(slot_lengths) // SLOT_CHUNK * SLOT_CHUNK
    positions = torch.arange(mask_from, num_chunks * SLOT_CHUNK, device=cache.device)
    masked = positions >= torch.tensor(slot_lengths, device=cache.device).unsqueeze(-1)
    in_order = slots == list(range(num_slots))
    return SlotDecodePlan(
        lengths=lengths,
        writes=cache.token_writes(slots, [n - 1 for n in lengths]),
        num_slots=num_slots,
        chunk_reads=reads,
        mask_from=mask_from,
        masked=masked.view(num_slots, 1, 1, -1),
        row_slots=None if in_order else torch.tensor(slots, device=cache.device))


def slot_decode_attention(cache: SlotCache, layer: int, plan: SlotDecodePlan, q: torch.Tensor, k: torch.Tensor,
                          v: torch.Tensor) -> torch.Tensor:
    """q (B, Hq, D), k and v (B, Hkv, D) of the decode rows, in the cache dtype -> attention output (B, Hq, D)."""
    cache.write_tokens(layer, plan.writes, k, v)
    rows, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    groups = num_heads // num_kv_heads
    num_slots, num_chunks = plan.num_slots, len(plan.chunk_reads)
    q_rows = (q * head_dim ** -0.5).view(rows, num_kv_heads, groups, head_dim)
    if plan.row_slots is None:
        q_slots = q_rows
    else:
        q_slots = q.new_zeros(num_slots, num_kv_heads, groups, head_dim).index_copy_(0, plan.row_slots, q_rows)

    def matrices(t: torch.Tensor, lo: int, hi: int, index: torch.Tensor | None) -> torch.Tensor:
        """The slots' matrices of a (slots, Hkv, a, b) tensor as a compact (n * Hkv, a, b) batch."""
        part = t[lo:hi] if index is None else t.index_select(0, index)
        return part.reshape(-1, *t.shape[2:])

    scores = q.new_empty(num_chunks, num_slots, num_kv_heads, groups, SLOT_CHUNK)
    for chunk, (lo, hi, index) in enumerate(plan.chunk_reads):
        keys = matrices(cache.k[layer][chunk], lo, hi, index).transpose(1, 2)
        if index is None:  # straight into the scores buffer
            torch.bmm(matrices(q_slots, lo, hi, None), keys, out=matrices(scores[chunk], lo, hi, None))
        else:
            product = torch.bmm(matrices(q_slots, lo, hi, index), keys)
            scores[chunk].index_copy_(0, index, product.view(-1, num_kv_heads, groups, SLOT_CHUNK))
    # One fp32 softmax over all chunks of a row; where a chunk was not read for a slot, the slot is masked.
    scores32 = torch.empty(num_slots, num_kv_heads, groups, num_chunks, SLOT_CHUNK, device=q.device)
    scores32.copy_(scores.permute(1, 2, 3, 0, 4))
    scores32 = scores32.view(num_slots, num_kv_heads, groups, -1)
    scores32[..., plan.mask_from:].masked_fill_(plan.masked, float("-inf"))
    probs32 = torch.softmax(scores32, dim=-1).view(num_slots, num_kv_heads, groups, num_chunks, SLOT_CHUNK)
    probs = scores.copy_(probs32.permute(3, 0, 1, 2, 4))  # back to chunk-major, in the cache dtype

    out = torch.zeros(num_slots, num_kv_heads, groups, head_dim, device=q.device)
    for chunk, (lo, hi, index) in enumerate(plan.chunk_reads):
        values = matrices(cache.v[layer][chunk], lo, hi, index)
        part = torch.bmm(matrices(probs[chunk], lo, hi, index), values).view(-1, num_kv_heads, groups, head_dim)
        if index is None:
            out[lo:hi] += part
        else:
            out.index_copy_(0, index, out.index_select(0, index) + part)  # index_add_ is ~5x slower here
    if plan.row_slots is not None:
        out = out.index_select(0, plan.row_slots)
    return out.view(rows, num_heads, head_dim)
