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

MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


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
