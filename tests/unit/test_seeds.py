"""Seed derivations keep the values every earlier run used (so splits, batch order and samples do not move)."""

import hashlib

from simpo_live.seeds import derive_seed, labelled_seed, mix, splitmix64


def test_labelled_seeds_are_the_sha256_of_their_path():
    for label, parts, text in (("validation", (0,), "simpo-live/validation/0"),
                               ("epoch", (5, 1), "simpo-live/epoch/5/1")):
        digest = hashlib.sha256(text.encode()).digest()
        assert labelled_seed(label, *parts) == int.from_bytes(digest[:8], "little") >> 1
    assert labelled_seed("epoch", 5, 1) != labelled_seed("validation", 5, 1)


def test_derived_seeds_are_a_splitmix64_chain_of_63_bits():
    assert derive_seed(0, 0) == 6017775124710473527  # the engine's sample-0 seed of request seed 0
    assert derive_seed(0, 0, 0, 0) == 1195769770526638388  # the eval's seed of (run 0, step 0, prompt 0, sample 0)
    assert mix(3, 4) == splitmix64(splitmix64(3) ^ 4)
    assert all(0 <= derive_seed(s, j) < 2**63 for s in (-1, 0, 2**70) for j in range(3))
