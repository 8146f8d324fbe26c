"""What a laid-out KV cache hands the runner (built by kv_cache.build_storage)."""

from __future__ import annotations

from dataclasses import dataclass

from simpo_live.engine.attention import KVCache
from simpo_live.engine.block_manager import Placement
from simpo_live.engine.decode_graph import DecodeGraphs


@dataclass
class KVStorage:
    """What the runner needs: where each sequence goes, the KV tensors (with their decode attention), and the
    bucketed decode forward when decode-only rounds use it."""

    placement: Placement
    cache: KVCache
    graphs: DecodeGraphs | None
    num_bytes: int
