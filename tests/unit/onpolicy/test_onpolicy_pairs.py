"""Pair building: highest vs lowest score per prompt, keyed by global prompt index; all-tied and all-identical
prompts dropped and counted; ties broken by sample index."""

import random

from generation_rows import make_row
from simpo_live.onpolicy.pairs import PairCounts, build_pairs


def sample(prompt_index: int, sample_index: int, text: str, score: float):
    return make_row(global_prompt_index=prompt_index, sample_index=sample_index, prompt=f"reverse: p{prompt_index}",
                    generated_text=text, score=score, seed=1000 * prompt_index + sample_index, step=7,
                    generated_token_count=len(text.split()) + 1, finish_reason="stop")


def pairs_of(rows, provenance=None):
    """build_pairs, each pair in its JSON form (the host file's line)."""
    pairs, counts = build_pairs(rows, provenance)
    return [pair.to_json() for pair in pairs], counts


def test_highest_against_lowest_with_their_provenance():
    rows = [sample(3, 0, "b a", 0.2), sample(3, 1, "a b", 0.9), sample(3, 2, "a a", -0.5), sample(3, 3, "b b", 0.1)]
    pairs, counts = pairs_of(rows, {"score_source": "scorer:x:y"})
    assert counts == PairCounts(prompts=1, pairs=1, identical=0, tied=0)
    (pair,) = pairs
    assert pair["prompt"] == "reverse: p3"
    assert pair["chosen"] == [{"role": "user", "content": "reverse: p3"}, {"role": "assistant", "content": "a b"}]
    assert pair["rejected"] == [{"role": "user", "content": "reverse: p3"}, {"role": "assistant", "content": "a a"}]
    assert (pair["chosen_sample_index"], pair["rejected_sample_index"]) == (1, 2)
    assert (pair["chosen_score"], pair["rejected_score"]) == (0.9, -0.5)
    assert (pair["chosen_seed"], pair["rejected_seed"]) == (3001, 3002)
    assert pair["scores"] == [0.2, 0.9, -0.5, 0.1] and pair["seeds"] == [3000, 3001, 3002, 3003]
    assert pair["step"] == 7 and pair["global_prompt_index"] == 3 and pair["score_source"] == "scorer:x:y"


def test_pairs_follow_the_global_prompt_index_not_the_row_order():
    rows = [sample(p, s, f"answer {p} {s}", float(s if p % 2 else -s)) for p in (5, 0, 9, 2) for s in range(3)]
    random.Random(0).shuffle(rows)  # rows of several hosts, interleaved
    pairs, counts = pairs_of(rows)
    assert [p["global_prompt_index"] for p in pairs] == [0, 2, 5, 9]
    for pair in pairs:
        index = pair["global_prompt_index"]
        assert pair["prompt"] == f"reverse: p{index}"
        best, worst = (2, 0) if index % 2 else (0, 2)
        assert pair["chosen"][1]["content"] == f"answer {index} {best}"
        assert pair["rejected"][1]["content"] == f"answer {index} {worst}"
    assert counts.pairs == 4 and counts.prompts == 4


def test_all_tied_and_all_identical_prompts_are_dropped_and_counted():
    rows = [sample(0, s, text, 1.0) for s, text in enumerate(["x", "y", "z"])]  # differ, all tie
    rows += [sample(1, s, "same", score) for s, score in enumerate([0.3, 0.30000001, 0.7])]  # identical texts
    rows += [sample(2, 0, "good", 1.0), sample(2, 1, "bad", 0.0)]
    pairs, counts = pairs_of(rows)
    assert counts == PairCounts(prompts=3, pairs=1, identical=1, tied=1)
    assert [p["global_prompt_index"] for p in pairs] == [2]


def test_rejected_is_never_the_chosen_text_and_ties_go_to_the_lowest_sample_index():
    # The best text appears twice with different low bits (a batched reward model); the rejected must be another text.
    rows = [sample(0, 0, "w", 0.0), sample(0, 1, "b", 1.0), sample(0, 2, "b", -2.0), sample(0, 3, "v", 0.0),
            sample(0, 4, "b", 1.0)]
    (pair,), _ = pairs_of(rows)
    assert (pair["chosen_sample_index"], pair["rejected_sample_index"]) == (1, 0)
