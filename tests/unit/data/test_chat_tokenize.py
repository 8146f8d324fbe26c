"""Chat-template tokenisation: response tokens are the final assistant turn, the prefix check, length policy."""

from __future__ import annotations

import copy

import pytest

from simpo_live.data import DataError, PreferenceRecord, tokenize_records
from simpo_live.data.word_tokenizer import CHAT_TEMPLATE


def record(prompt: str = "w1 w2 w3", chosen: str = "w3 w2 w1", rejected: str = "w1 w2",
           context: list[dict] | None = None) -> PreferenceRecord:
    messages = context or [{"role": "user", "content": prompt}]
    return PreferenceRecord(prompt_messages=messages, chosen=chosen, rejected=rejected, source="prefs.jsonl:7")


def test_response_tokens_are_the_final_assistant_turn(word_tokenizer):
    (pair,), dropped = tokenize_records([record()], word_tokenizer, 64, 32, "error")
    assert dropped == 0
    assert word_tokenizer.decode(pair.prompt_ids) == "<s> <|user|> w1 w2 w3 <|end|> <|assistant|>"
    assert word_tokenizer.decode(pair.chosen_ids) == "w3 w2 w1 <|end|>"
    assert word_tokenizer.decode(pair.rejected_ids) == "w1 w2 <|end|>"
    assert pair.source == "prefs.jsonl:7"
    assert pair.prompt_text == "w1 w2 w3"


def test_multi_turn_prompt_keeps_earlier_turns_in_the_prompt(word_tokenizer):
    context = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"},
               {"role": "user", "content": "w5"}]
    (pair,), _ = tokenize_records([record(context=context, chosen="w6", rejected="w7")], word_tokenizer,
                                  64, 32, "error")
    assert word_tokenizer.decode(pair.prompt_ids) == (
        "<s> <|user|> hello <|end|> <|assistant|> world <|end|> <|user|> w5 <|end|> <|assistant|>")
    assert word_tokenizer.decode(pair.chosen_ids) == "w6 <|end|>"
    assert pair.prompt_text == "w5"


def test_template_that_breaks_the_prefix_property_is_an_error(word_tokenizer):
    broken = copy.deepcopy(word_tokenizer)
    # The generation prompt says <|system|> but the rendered answer turn says <|assistant|>.
    broken.chat_template = CHAT_TEMPLATE.replace("{% if add_generation_prompt %}<|assistant|>",
                                                 "{% if add_generation_prompt %}<|system|>")
    with pytest.raises(DataError, match=r"^prefs.jsonl:7: the chat template does not render the prompt as a "
                                        r"prefix of the conversation with the chosen answer \(tokens differ from "
                                        r"position 6\)"):
        tokenize_records([record()], broken, 64, 32, "error")


def test_tokenizer_without_chat_template_is_an_error(word_tokenizer):
    plain = copy.deepcopy(word_tokenizer)
    plain.chat_template = None
    with pytest.raises(DataError, match="has no chat template"):
        tokenize_records([record()], plain, 64, 32, "error")


# record(): prompt 7 tokens, chosen 4, rejected 3 -> total 11.
@pytest.mark.parametrize("max_seq_len, max_prompt_len, fits", [
    (11, 7, True), (10, 7, False), (11, 6, False), (100, 6, False),
])
def test_length_limits_are_inclusive_and_use_the_longer_response(word_tokenizer, max_seq_len, max_prompt_len, fits):
    pairs, dropped = tokenize_records([record()], word_tokenizer, max_seq_len, max_prompt_len, "drop")
    assert (len(pairs), dropped) == ((1, 0) if fits else (0, 1))


def test_overlong_error_names_row_lengths_and_knobs(word_tokenizer):
    with pytest.raises(DataError) as info:
        tokenize_records([record()], word_tokenizer, 10, 7, "error")
    assert str(info.value) == (
        "prefs.jsonl:7: pair is too long: prompt 7 tokens (data.max_prompt_len=7), prompt + longer response "
        "11 tokens (data.max_seq_len=10); raise the limits or set data.overlong=drop")


def test_overlong_drop_counts_and_keeps_the_rest(word_tokenizer):
    records = [record(), record(chosen="w1 " * 20), record(rejected="w9")]
    pairs, dropped = tokenize_records(records, word_tokenizer, 16, 8, "drop")
    assert dropped == 1
    assert [word_tokenizer.decode(p.rejected_ids) for p in pairs] == ["w1 w2 <|end|>", "w9 <|end|>"]


def test_nothing_is_truncated(word_tokenizer):
    (pair,), _ = tokenize_records([record(chosen="w1 " * 40)], word_tokenizer, 100, 32, "error")
    assert len(pair.chosen_ids) == 41


def test_template_with_a_default_system_turn_and_eos_after_the_answer(word_tokenizer):
    custom = copy.deepcopy(word_tokenizer)
    custom.chat_template = (
        "{{ bos_token }}<|system|> hello <|end|> "
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> "
        "{% if m['role'] == 'assistant' %}</s> {% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    (pair,), _ = tokenize_records([record()], custom, 64, 32, "error")
    assert custom.decode(pair.prompt_ids) == "<s> <|system|> hello <|end|> <|user|> w1 w2 w3 <|end|> <|assistant|>"
    assert custom.decode(pair.chosen_ids) == "w3 w2 w1 <|end|> </s>"
