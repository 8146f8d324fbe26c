"""The reverse-words task: prompt format, corruptions, the UltraFeedback row layout and the scorer."""

from __future__ import annotations

import random

import pytest

from simpo_live.tasks import reverse_words as task


def test_vocabulary_is_fixed_distinct_and_a_few_hundred_words():
    assert len(task.VOCABULARY) == len(set(task.VOCABULARY)) == 280
    assert task.VOCABULARY[:3] == ("ba", "ban", "bat")
    assert all(word.isalpha() and word.islower() for word in task.VOCABULARY)


def test_prompt_and_correct_answer():
    assert task.make_prompt(["ba", "ko", "mi"]) == "reverse: ba ko mi"
    assert task.correct_answer(["ba", "ko", "mi"]) == "mi ko ba"


@pytest.mark.parametrize("kind", task.CORRUPTIONS)
def test_corruptions_are_never_correct(kind):
    rng = random.Random(0)
    for _ in range(200):
        words = task.sample_words(rng)
        wrong = task.corrupt_answer(words, rng, kind)
        assert wrong != task.correct_answer(words)
        assert set(wrong.split()) <= set(words)


def test_corruption_kinds():
    words = ["ba", "ko", "mi", "su"]
    rng = random.Random(1)
    assert task.corrupt_answer(words, rng, "original_order") == "ba ko mi su"
    assert len(task.corrupt_answer(words, rng, "dropped_word").split()) == 3
    assert len(task.corrupt_answer(words, rng, "repeated_word").split()) == 5
    swapped = task.corrupt_answer(words, rng, "adjacent_swap").split()
    assert sorted(swapped) == sorted(words)
    with pytest.raises(ValueError, match="unknown corruption 'shuffle'"):
        task.corrupt_answer(words, rng, "shuffle")


def test_preference_rows_layout_and_determinism():
    rows = task.make_preference_rows(50, seed=7)
    assert rows == task.make_preference_rows(50, seed=7)
    assert rows != task.make_preference_rows(50, seed=8)
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        words = task.parse_prompt_words(row["prompt"])
        assert task.MIN_WORDS <= len(words) <= task.MAX_WORDS
        for key in ("chosen", "rejected"):
            user, assistant = row[key]
            assert user == {"role": "user", "content": row["prompt"]}
            assert assistant["role"] == "assistant"
        assert row["chosen"][1]["content"] == task.correct_answer(words)
        assert row["rejected"][1]["content"] != task.correct_answer(words)
    assert {len(task.parse_prompt_words(r["prompt"])) for r in rows} == set(range(3, 9))


@pytest.mark.parametrize("generated, expected", [
    ("mi ko ba", 1.0),
    ("  mi ko ba <|end|>", 1.0),
    ("mi ko ba <|end|> su su", 1.0),  # anything after the end-of-turn is ignored
    ("<|assistant|> mi ko ba </s>", 1.0),
    ("ba ko mi", 0.0),
    ("mi ko", 0.0),
    ("mi ko ba ba", 0.0),
    ("", 0.0),
])
def test_score(generated, expected):
    assert task.score({"prompt": "reverse: ba ko mi", "generated_text": generated}) == expected


def test_score_reads_chat_rendered_prompts_and_bad_rows():
    rendered = "<s><|user|> reverse: ba ko mi <|end|> <|assistant|> "
    assert task.score({"prompt": rendered, "generated_text": "mi ko ba"}) == 1.0
    messages = [{"role": "user", "content": "reverse: ba ko"}]
    assert task.score({"prompt": messages, "generated_text": "ko ba"}) == 1.0
    assert task.score({"prompt": "sort: ba ko", "generated_text": "ko ba"}) == 0.0
    assert task.score({"prompt": "reverse: ba ko"}) == 0.0


def test_scorer_is_importable_by_its_config_string():
    import importlib

    module_name, function_name = "simpo_live.tasks.reverse_words:score".split(":")
    assert getattr(importlib.import_module(module_name), function_name) is task.score
