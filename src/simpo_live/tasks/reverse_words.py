"""The embedded default's synthetic task: reverse a list of words. Prompts, answers, preference rows, a scorer.

`make_prompt(["ba", "ko", "mi"]) == "reverse: ba ko mi"`, whose correct answer is `"mi ko ba"`. This module
knows nothing about tokenizers or models; `scripts/make_tiny_reverse.py` builds the bundled model from it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

PREFIX = "reverse:"
MIN_WORDS = 3
MAX_WORDS = 8
CORRUPTIONS = ("original_order", "adjacent_swap", "dropped_word", "repeated_word")

_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()
_CODAS = ["", "n", "t", "m"]
# 14 * 5 * 4 = 280 pronounceable words: "ba", "ban", "bat", ..., "zum". Fixed order, no randomness.
VOCABULARY: tuple[str, ...] = tuple(o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS)

_SPECIAL = re.compile(r"^<[^<>\s]*>$")  # "<|end|>", "</s>", "<pad>", ...
_STOP_MARKERS = {"<|end|>", "</s>", "<|eot_id|>", "<|im_end|>"}


def sample_words(rng: random.Random, num_words: int | None = None) -> list[str]:
    """Distinct words from VOCABULARY; the count is uniform in [MIN_WORDS, MAX_WORDS] unless given."""
    if num_words is None:
        num_words = rng.randint(MIN_WORDS, MAX_WORDS)
    return rng.sample(VOCABULARY, num_words)


def make_prompt(words: Sequence[str]) -> str:
    return f"{PREFIX} {' '.join(words)}"


def correct_answer(words: Sequence[str]) -> str:
    return " ".join(reversed(words))


def corrupt_answer(words: Sequence[str], rng: random.Random, kind: str | None = None) -> str:
    """A wrong answer of the given kind (random among CORRUPTIONS if None); never equal to the correct one.

    Needs distinct words (as `sample_words` gives) and at least 2 of them.
    """
    if kind is None:
        kind = rng.choice(CORRUPTIONS)
    if len(words) < 2 or len(set(words)) != len(words):
        raise ValueError(f"corrupt_answer needs at least 2 distinct words, got {list(words)}")
    answer = list(reversed(words))
    if kind == "original_order":
        answer = list(words)
    elif kind == "adjacent_swap":
        i = rng.randrange(len(answer) - 1)
        answer[i], answer[i + 1] = answer[i + 1], answer[i]
    elif kind == "dropped_word":
        del answer[rng.randrange(len(answer))]
    elif kind == "repeated_word":
        i = rng.randrange(len(answer))
        answer.insert(i, answer[i])
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    return " ".join(answer)


def _conversation(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def make_preference_rows(n: int, seed: int) -> list[dict]:
    """`n` UltraFeedback-layout rows: `prompt`, `chosen` (correct reversal) and `rejected` (a corruption),
    both as message lists ending with the assistant's answer. Deterministic in (n, seed)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = sample_words(rng)
        prompt = make_prompt(words)
        rows.append({
            "prompt": prompt,
            "chosen": _conversation(prompt, correct_answer(words)),
            "rejected": _conversation(prompt, corrupt_answer(words, rng)),
        })
    return rows


def parse_prompt_words(prompt: str) -> list[str] | None:
    """The words after the last `reverse:` in `prompt` (raw or chat-rendered), up to the next special token."""
    tokens = prompt.split()
    if PREFIX not in tokens:
        return None
    start = len(tokens) - tokens[::-1].index(PREFIX)
    words = []
    for token in tokens[start:]:
        if _SPECIAL.match(token):
            break
        words.append(token)
    return words


def parse_answer_words(text: str) -> list[str]:
    """Words of a generated answer: everything before the first end-of-turn/EOS marker, special tokens removed."""
    words = []
    for token in text.split():
        if token in _STOP_MARKERS:
            break
        if not _SPECIAL.match(token):
            words.append(token)
    return words


def score(row: dict) -> float:
    """1.0 if `row["generated_text"]` is the reversal of the words in `row["prompt"]`, else 0.0.

    Usable as `inference_eval.scorer: "simpo_live.tasks.reverse_words:score"`. Whitespace, special tokens
    and anything after the first end-of-turn marker are ignored; a prompt that is not a reverse task scores 0.
    """
    prompt = row.get("prompt")
    if isinstance(prompt, list):  # a message list: the last user message holds the task
        prompt = next((m.get("content", "") for m in reversed(prompt) if m.get("role") == "user"), "")
    if not isinstance(prompt, str):
        return 0.0
    words = parse_prompt_words(prompt)
    if not words:
        return 0.0
    generated = row.get("generated_text")
    if not isinstance(generated, str):
        return 0.0
    return 1.0 if parse_answer_words(generated) == list(reversed(words)) else 0.0
