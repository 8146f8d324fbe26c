"""The data source switch: offline batches before the first round, the round's pairs after it (alone or with a fixed
offline share), a pure function of the step and the round; a round with no pairs keeps the previous one."""

import pytest

from simpo_live.data import TokenizedPair
from simpo_live.data.batches import global_batch_indices
from simpo_live.data.stream import SeededPairs
from simpo_live.onpolicy.source import OnPolicyPairs, offline_share, round_order_seed


def pairs(tag: str, n: int) -> list[TokenizedPair]:
    return [TokenizedPair([1, i], [2], [3], f"{tag}:{i}", f"{tag} {i}") for i in range(n)]


OFFLINE, ROUND_A, ROUND_B = pairs("offline", 40), pairs("a", 7), pairs("b", 5)


def sources(batch: list[TokenizedPair]) -> list[str]:
    return [p.source for p in batch]


def test_offline_until_a_round_then_only_its_pairs_in_seeded_order():
    stream = OnPolicyPairs(SeededPairs(OFFLINE, 4, seed=3), offline_fraction=0.0)
    before = stream.batch(2)
    assert sources(before) == [f"offline:{i}" for i in global_batch_indices(40, 4, 2, 3)]
    stream.use_round(10, ROUND_A)
    seed = round_order_seed(3, 10)
    for step in (10, 11, 12):  # 4 per batch from 7 pairs: batches straddle the round's epochs
        expected = [f"a:{i}" for i in global_batch_indices(7, 4, step - 10, seed)]
        assert sources(stream.batch(step)) == expected
    assert round_order_seed(3, 10) != round_order_seed(3, 20) != round_order_seed(4, 10)


def test_mixed_batches_keep_the_offline_share_and_the_offline_stream():
    stream = OnPolicyPairs(SeededPairs(OFFLINE, 8, seed=0), offline_fraction=0.25)
    stream.use_round(5, ROUND_A)
    batch = stream.batch(6)
    assert sources(batch[:2]) == [f"offline:{i}" for i in global_batch_indices(40, 2, 6, 0)]
    assert sources(batch[2:]) == [f"a:{i}" for i in global_batch_indices(7, 6, 1, round_order_seed(0, 5))]
    assert len(batch) == 8


def test_a_round_without_pairs_keeps_the_previous_round():
    stream = OnPolicyPairs(SeededPairs(OFFLINE, 4, seed=0), offline_fraction=0.0)
    stream.use_round(0, ROUND_A)
    kept = sources(stream.batch(12))
    stream.use_round(10, [])
    assert sources(stream.batch(12)) == kept
    stream.use_round(10, ROUND_B)
    assert set(sources(stream.batch(12))) <= {f"b:{i}" for i in range(5)}


def test_replaying_a_round_gives_the_same_batches():
    first = OnPolicyPairs(SeededPairs(OFFLINE, 4, seed=1), 0.5)
    second = OnPolicyPairs(SeededPairs(OFFLINE, 4, seed=1), 0.5)
    first.use_round(3, ROUND_B)
    second.use_round(3, list(ROUND_B))  # as reloaded from the round's files
    assert [sources(first.batch(s)) for s in range(3, 9)] == [sources(second.batch(s)) for s in range(3, 9)]


@pytest.mark.parametrize("size,fraction,expected", [(16, 0.0, 0), (16, 0.5, 8), (16, 0.97, 15), (1, 0.9, 0)])
def test_offline_share_leaves_at_least_one_round_pair(size, fraction, expected):
    assert offline_share(size, fraction) == expected


def test_rounds_take_the_next_prompts_until_every_prompt_was_used():
    from simpo_live.onpolicy.plan import round_prompt_indices

    rounds = [round_prompt_indices(10, 4, k, seed=2) for k in range(3)]
    first_epoch = rounds[0] + rounds[1] + rounds[2][:2]
    assert sorted(first_epoch) == list(range(10))
    assert round_prompt_indices(10, 4, 1, seed=2) == rounds[1]  # a pure function of the round


def test_the_prompt_pool_is_each_training_prompt_once_or_the_prompt_file(tmp_path):
    from types import SimpleNamespace

    from simpo_live.onpolicy.register import prompt_pool

    train = [TokenizedPair([1], [2], [3], f"prefs.jsonl:{i + 1}", text) for i, text in enumerate("abacb")]
    session = SimpleNamespace(data=SimpleNamespace(train=train))
    assert prompt_pool(SimpleNamespace(prompts_path=None), session) == [
        ("a", "prefs.jsonl:1"), ("b", "prefs.jsonl:2"), ("c", "prefs.jsonl:4")]
    path = tmp_path / "prompts.txt"
    path.write_text("first\n\nsecond\n")
    assert prompt_pool(SimpleNamespace(prompts_path=str(path)), session) == [
        ("first", f"{path}:1"), ("second", f"{path}:3")]
