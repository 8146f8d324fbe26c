"""The KV cache tensors and their sizing. Two storages, matching the two placements of block_manager.py:

- `RunCache` (page runs, CUDA): one flat pool per layer, k and v each (pool_tokens, num_kv_heads, head_dim),
  token-major so that gathering contexts copies whole token rows (index_select); gathering along a middle
  dimension of a head-major pool took 59% of an H200 decode round. A sequence's context is [kv_start, +length).
- `SlotCache` (fixed slots, CPU): per layer, the slot positions are cut into chunks of `SLOT_CHUNK` tokens and
  chunk c of every slot lives in one tensor (num_slots, num_kv_heads, SLOT_CHUNK, head_dim). Decode attention
  then reads chunk c of a range of slots as one compact batch of small matrices, in place: oneDNN's bf16 bmm is
  fast only on compact batches, and this avoids both a copy of the context and SDPA's slow path for 1-4 query
  rows per head (measured at 256 slots x 300 keys, bf16: 4.6 ms per layer against 11.3 for SDPA over the slot
  view and ~12 for the former copy + bmm path). Chunks are allocated (zeroed) when a sequence first reaches
  them, so memory is committed as contexts grow and every position holds a finite number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from simpo_live.model.args import ModelArgs

SLOT_CHUNK = 64  # tokens per chunk of a slot: a multiple of 16 (decode pads keys to whole chunks)


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


class RunCache:
    """Keys and values of every cached token, one pair of flat pools per layer (never one stacked tensor: slicing
    a layer out of a stacked cache misbehaves under torch.compile, research section 2.6)."""

    def __init__(self, args: ModelArgs, pool_tokens: int, dtype: torch.dtype, device: torch.device,
                 scratch_tokens: int = 0, slot_len: int = 0):
        # Scratch positions past the pool belong to no sequence (padded rows of decode_graph.py write there).
        shape = (pool_tokens + scratch_tokens, args.num_key_value_heads, args.head_dim)  # (N, Hkv, D)
        # Slot views read (masked) positions past a sequence's length: they must hold finite numbers, as a masked
        # key still adds 0 * value. Gathers clamp to written positions, so run placement can leave memory as is.
        make = torch.zeros if slot_len else torch.empty
        self.k = [make(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.v = [make(shape, dtype=dtype, device=device) for _ in range(args.num_hidden_layers)]
        self.dtype = dtype
        self.num_bytes = kv_bytes_per_token(args, dtype) * pool_tokens
        self.slot_len = slot_len  # > 0: sequences sit in fixed slots of this many positions (strided_slots)

    def locate(self, kv_start: int) -> int:
        """The handle `write` and `context` take for the sequence at pool offset `kv_start`: the offset itself."""
        return kv_start

    def write(self, layer: int, kv_start: int, position: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (n, Hkv, D) at positions [position, position + n) of the sequence at `kv_start`."""
        lo = kv_start + position
        self.k[layer][lo:lo + k.shape[0]] = k
        self.v[layer][lo:lo + v.shape[0]] = v

    def context(self, layer: int, kv_start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (Hkv, length, D) of positions [0, length) of the sequence at `kv_start` (views)."""
        end = kv_start + length
        return self.k[layer][kv_start:end].transpose(0, 1), self.v[layer][kv_start:end].transpose(0, 1)

    def free(self) -> None:
        self.k, self.v = [], []


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
        self.max_chunks = -(-slot_len // SLOT_CHUNK)
        self.chunk_shape = (num_slots, args.num_key_value_heads, SLOT_CHUNK, args.head_dim)
        self.dtype, self.device = dtype, device
        self.num_layers = args.num_hidden_layers
        self.k: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]  # k[layer][chunk]
        self.v: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]
        self.num_bytes = kv_bytes_per_token(args, dtype) * num_slots * slot_len

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
        self.reserve_chunks(-(-end // SLOT_CHUNK))
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
        count = -(-length // SLOT_CHUNK)
        keys = torch.cat([self.k[layer][c][slot] for c in range(count)], dim=1)[:, :length]
        values = torch.cat([self.v[layer][c][slot] for c in range(count)], dim=1)[:, :length]
        return keys, values

    def free(self) -> None:
        self.k, self.v = [], []
