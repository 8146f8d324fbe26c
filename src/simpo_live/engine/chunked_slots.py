"""Fixed KV slots stored chunk-major (the CPU default), and decode attention over them.

Per layer, the positions of a slot are cut into chunks of `SLOT_CHUNK` tokens, and chunk c of every slot lives in
one tensor (num_slots, num_kv_heads, SLOT_CHUNK, head_dim). Decode attention then reads chunk c of a range of
slots as one compact batch of small matrices, in place: oneDNN's bf16 bmm is fast only on compact batches, and
this avoids both a copy of the context and SDPA's slow path for 1-4 query rows per head (figures in
docs/decisions.md). Chunks are allocated (zeroed) when a sequence first reaches them, so memory is committed as
contexts grow and every position holds a finite number.

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

from simpo_live.intmath import ceil_div
from simpo_live.model.args import ModelArgs

SLOT_CHUNK = 64  # tokens per chunk of a slot: a multiple of 16 (decode pads keys to whole chunks)
GATHER_BELOW = 0.4  # a chunk read by fewer than this share of the slots in its range is gathered, not sliced


@dataclass
class TokenWrite:
    """Decode rows `rows` (None: all, in order) go to chunk `chunk` of slots `slots` at offsets `offsets`."""

    chunk: int
    rows: torch.Tensor | None
    slots: torch.Tensor
    offsets: torch.Tensor


class SlotCache:
    """`num_slots` fixed slots of `slot_len` positions, stored chunk-major (module docstring)."""

    def __init__(self, args: ModelArgs, num_slots: int, slot_len: int, dtype: torch.dtype, device: torch.device):
        self.num_slots = num_slots
        self.slot_len = slot_len
        self.max_chunks = ceil_div(slot_len, SLOT_CHUNK)
        self.chunk_shape = (num_slots, args.num_key_value_heads, SLOT_CHUNK, args.head_dim)
        self.dtype, self.device = dtype, device
        self.num_layers = args.num_hidden_layers
        self.k: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]  # k[layer][chunk]
        self.v: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]

    def locate(self, kv_start: int) -> int:
        """The handle `write` and `context` take for the sequence at pool offset `kv_start`: its slot."""
        return kv_start // self.slot_len

    def reserve_chunks(self, count: int) -> None:
        """Make chunks [0, count) exist in every layer."""
        if count > self.max_chunks:
            raise RuntimeError(f"position chunk {count - 1} is past the slot length {self.slot_len}")
        for layer in range(self.num_layers):
            for pools in (self.k[layer], self.v[layer]):
                while len(pools) < count:
                    pools.append(torch.zeros(self.chunk_shape, dtype=self.dtype, device=self.device))

    def write(self, layer: int, slot: int, position: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (n, Hkv, D) at positions [position, position + n) of `slot`."""
        end = position + k.shape[0]
        self.reserve_chunks(ceil_div(end, SLOT_CHUNK))
        while position < end:
            chunk, offset = divmod(position, SLOT_CHUNK)
            n = min(end - position, SLOT_CHUNK - offset)
            row = k.shape[0] - (end - position)
            self.k[layer][chunk][slot, :, offset:offset + n] = k[row:row + n].transpose(0, 1)
            self.v[layer][chunk][slot, :, offset:offset + n] = v[row:row + n].transpose(0, 1)
            position += n

    def token_writes(self, slots: list[int], positions: list[int]) -> list[TokenWrite]:
        """Where one new token per row goes (decode): row i at position positions[i] of slot slots[i]. Built once
        per step and used by every layer; rows are grouped by chunk (usually one or two groups)."""
        by_chunk: dict[int, list[int]] = {}
        for row, position in enumerate(positions):
            by_chunk.setdefault(position // SLOT_CHUNK, []).append(row)
        self.reserve_chunks(max(by_chunk) + 1)
        writes = []
        for chunk, rows in by_chunk.items():
            every_row = len(rows) == len(positions)
            writes.append(TokenWrite(
                chunk=chunk,
                rows=None if every_row else torch.tensor(rows, device=self.device),
                slots=torch.tensor([slots[r] for r in rows], device=self.device),
                offsets=torch.tensor([positions[r] % SLOT_CHUNK for r in rows], device=self.device)))
        return writes

    def write_tokens(self, layer: int, writes: list[TokenWrite], k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (B, Hkv, D) of the decode rows as planned by `token_writes`."""
        for w in writes:
            self.k[layer][w.chunk][w.slots, :, w.offsets] = k if w.rows is None else k[w.rows]
            self.v[layer][w.chunk][w.slots, :, w.offsets] = v if w.rows is None else v[w.rows]

    def context(self, layer: int, slot: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (Hkv, length, D) of positions [0, length) of `slot` (copies)."""
        count = ceil_div(length, SLOT_CHUNK)
        keys = torch.cat([self.k[layer][c][slot] for c in range(count)], dim=1)[:, :length]
        values = torch.cat([self.v[layer][c][slot] for c in range(count)], dim=1)[:, :length]
        return keys, values

    def plan_decode(self, spans: list[tuple[int, int]]) -> SlotDecodePlan:
        """Decode metadata for rows spans[i] = (slot, length incl. the new token), built once per step."""
        return plan_slot_decode(self, [slot for slot, _ in spans], [n for _, n in spans])

    def decode(self, layer: int, plan: SlotDecodePlan, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        return slot_decode_attention(self, layer, plan, q, k, v)

    def free(self) -> None:
        self.k, self.v = [], []


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
    num_chunks = ceil_div(max(lengths), SLOT_CHUNK)
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
            out.index_copy_(0, index, out.index_select(0, index) + part)  # index_add_ is slower here (docs/decisions.md)
    if plan.row_slots is not None:
        out = out.index_select(0, plan.row_slots)
    return out.view(rows, num_heads, head_dim)
