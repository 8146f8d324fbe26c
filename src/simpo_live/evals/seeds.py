"""Seeds that come from the work, not the worker: one per (run seed, eval step, global prompt index, sample index).

A stable integer hash (splitmix64 chain), so the same prompt gets the same seed, and with the engine's seeded
sampler the same text, on 1, 2 or 4 hosts and in any batch. Python's `hash` is not used: it is salted per process.
"""

from __future__ import annotations

from simpo_live.engine.sampler import MASK64, splitmix64


def derive_sample_seed(run_seed: int, step: int, global_prompt_index: int, sample_index: int) -> int:
    """A 63-bit seed for one sample; independent of host count, rank and batch."""
    h = splitmix64(run_seed & MASK64)
    for part in (step, global_prompt_index, sample_index):
        h = splitmix64(h ^ (part & MASK64))
    return h >> 1
