"""Fixed KV slots in a token-major pool (the CUDA default), and decode attention over a strided view of them.

Per layer, k and v are each one (num_slots * slot_len [+ slot_len scratch], num_kv_heads, head_dim) tensor; slot i
holds its sequence's positions at rows [i * slot_len, (i + 1) * slot_len). Decode views slots [0, n) as
(n, Hkv, padded_len, D) with no copy and runs one SDPA with a length mask: no gather of contexts (figures in
docs/decisions.md); or, with `decode_kernel` (the CUDA default, decode_kernel.py), reads each row's slot up to its
own length in one Triton kernel. Prefill writes and reads a slot's rows directly. Decode-only rounds replay as CUDA graphs over
static buffers (decode_graph.py), their padded rows writing to and reading from a scratch slot past the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from simpo_live.intmath import round_up
from simpo_live.model.args import ModelArgs

KEY_PAD = 16  # decode pads keys to a multiple of this: rows then equal any other multiple's on CPU


@dataclass
class SlotViewPlan:
    """Decode rows of one step: slots [0, num_slots) viewed as (slots, Hkv, padded_len, D); row i is the sequence
    in slot row_slots[i]."""

    num_slots: int
    padded_len: int
    row_slots: torch.Tensor  # (B,)
    row_lengths: torch.Tensor  # (B,) positions each row attends to, its new token included; <= padded_len
    write_index: torch.Tensor  # (B,) pool row of each row's new token
    mask: torch.Tensor  # (num_slots, 1, 1, padded_len) True where attended; idle slots see position 0 only

    @property
    def num_rows(self) -> int:
        return self.row_slots.shape[0]


def slot_view_plan(row_slots: torch.Tensor, lengths: torch.Tensor, num_slots: int, padded_len: int,
                   slot_len: int) -> SlotViewPlan:
    """Built from device tensors only, so a CUDA graph can build it from its static inputs (decode_graph.py)."""
    slot_lengths = torch.ones(num_slots, dtype=lengths.dtype, device=lengths.device).index_copy_(0, row_slots, lengths)
    offsets = torch.arange(padded_len, device=lengths.device)
    mask = (offsets < slot_lengths.unsqueeze(-1)).view(num_slots, 1, 1, padded_len)
    return SlotViewPlan(num_slots, padded_len, row_slots, lengths, row_slots * slot_len + lengths - 1, mask)


class StridedSlotCache:
    """`num_slots` fixed slots of `slot_len` positions in one token-major pool per layer; with `scratch_slot`, one
    more slot past them that no sequence owns (the padded rows of bucketed decode rounds)."""

    def __init__(self, args: ModelArgs, num_slots: int, slot_len: int, dtype: torch.dtype, device: torch.device,
                 scratch_slot: bool = False, decode_kernel: Callable | None = None):
        shape = ((num_slots + scratch_slot) * slot_len, args.num_key_value_heads, args.head_dim)  # (N, Hkv, D)
        # Slot views read (masked) positions past a sequence's length: they must hold finite numbers, as a masked
        # key still adds 0 * value.
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.dtype, self.device = dtype, device
        self.slot_len = slot_len
        self.scratch_handle = num_slots  # the scratch slot (only written when scratch_slot)
        self.decode_kernel = decode_kernel  # decode_kernel.split_decode_attention, or None: the masked SDPA view

    def locate(self, kv_start: int) -> int:
        """The handle `write`, `context` and the decode plans take for the sequence at pool offset `kv_start`."""
        return kv_start // self.slot_len

    def write(self, layer: int, slot: int, position: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (n, Hkv, D) at positions [position, position + n) of `slot`."""
        lo = slot * self.slot_len + position
        self.k[layer][lo:lo + k.shape[0]] = k
        self.v[layer][lo:lo + v.shape[0]] = v

    def context(self, layer: int, slot: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (Hkv, length, D) of positions [0, length) of `slot` (views)."""
        lo = slot * self.slot_len
        return self.k[layer][lo:lo + length].transpose(0, 1), self.v[layer][lo:lo + length].transpose(0, 1)

    def plan_decode(self, spans: list[tuple[int, int]]) -> SlotViewPlan:
        """Decode metadata for rows spans[i] = (slot, length incl. the new token): the slots up to the last used."""
        slots = [slot for slot, _ in spans]
        padded_len = min(round_up(max(n for _, n in spans), KEY_PAD), self.slot_len)
        return slot_view_plan(torch.tensor(slots, device=self.device),
                              torch.tensor([n for _, n in spans], device=self.device),
                              max(slots) + 1, padded_len, self.slot_len)

    def plan_bucket(self, slots: torch.Tensor, lengths: torch.Tensor, context: int) -> SlotViewPlan:
        """The same from a decode bucket's static device tensors (decode_graph.py): every slot and the scratch one."""
        return slot_view_plan(slots, lengths, self.scratch_handle + 1, min(context, self.slot_len), self.slot_len)

    def decode(self, layer: int, plan: SlotViewPlan, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """q (B, Hq, D), k and v (B, Hkv, D) of the decode rows -> attention output (B, Hq, D)."""
        rows, num_heads, head_dim = q.shape
        num_kv_heads = k.shape[1]
        cache_k, cache_v = self.k[layer], self.v[layer]
        cache_k.index_copy_(0, plan.write_index, k)  # cheaper than an index_put
        cache_v.index_copy_(0, plan.write_index, v)
        if self.decode_kernel is not None:
            return self.decode_kernel(q, cache_k, cache_v, plan.row_slots, plan.row_lengths, self.slot_len,
                                      plan.padded_len)
        q_fold = q.view(rows, num_kv_heads, num_heads // num_kv_heads, head_dim)  # GQA folded into query rows
        q_slots = q.new_zeros(plan.num_slots, *q_fold.shape[1:]).index_copy_(0, plan.row_slots, q_fold)

        def slot_view(pool: torch.Tensor) -> torch.Tensor:  # (N, Hkv, D) -> (slots, Hkv, padded_len, D), no copy
            extent = plan.num_slots * self.slot_len
            return pool[:extent].view(plan.num_slots, self.slot_len, num_kv_heads, head_dim)[
                :, :plan.padded_len].transpose(1, 2)

        out = F.scaled_dot_product_attention(q_slots, slot_view(cache_k), slot_view(cache_v), attn_mask=plan.mask)
        return out.index_select(0, plan.row_slots).reshape(rows, num_heads, head_dim)

    def free(self) -> None:
        self.k, self.v = [], []
