"""Seeds derived from a root seed: stable across processes, hosts and Python versions (never Python's salted
`hash`), 63 bits so they fit an int64, JSON and `torch.Generator.manual_seed`.

- `derive_seed(root, *parts)`: a splitmix64 chain, cheap enough for every sample of every request (the engine's
  per-sample seeds, the eval's per-prompt seeds; the sampler's per-position uniforms use the same mixer).
- `labelled_seed(label, *parts)`: SHA-256 of "simpo-live/label/part/...", for the data's one-off choices (which
  rows are held out, each epoch's order); a label keeps each use's seeds unrelated to every other's.
The two are kept apart, not merged: merging would reshuffle the validation split and the batch order of every run.
"""

from __future__ import annotations

import hashlib

import numpy as np

MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def splitmix64_array(x: np.ndarray) -> np.ndarray:
    """`splitmix64` of each element of a uint64 array, bit for bit (uint64 arithmetic wraps modulo 2**64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def mix_pairs(roots: list[int], parts: list[int]) -> np.ndarray:
    """mix(roots[i], parts[i]) for every i at once, as uint64 (the sampler's per-row uniforms)."""
    roots_array = np.array([r & MASK64 for r in roots], dtype=np.uint64)
    parts_array = np.array([p & MASK64 for p in parts], dtype=np.uint64)
    return splitmix64_array(splitmix64_array(roots_array) ^ parts_array)


def mix(root: int, *parts: int) -> int:
    """The 64-bit splitmix64 chain over root, then each part."""
    h = splitmix64(root & MASK64)
    for part in parts:
        h = splitmix64(h ^ (part & MASK64))
    return h


def derive_seed(root: int, *parts: int) -> int:
    """A 63-bit child seed of `root` for `parts` (e.g. sample j of a request, or step, prompt, sample)."""
    return mix(root, *parts) >> 1


def labelled_seed(label: str, *parts: object) -> int:
    """A 63-bit seed for a named use, e.g. labelled_seed("epoch", run_seed, epoch)."""
    path = "/".join(["simpo-live", label, *map(str, parts)])
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little") >> 1
