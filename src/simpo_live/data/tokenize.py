"""Tokenise preference records with the tokenizer's chat template; apply the explicit length policy.

A response's tokens are the full conversation's tokens minus the prompt-with-generation-prompt tokens, so
they are exactly the final assistant turn as the template renders it (end-of-turn marker included). No
truncation ever: a pair over the limits is an error or, with overlong='drop', is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from simpo_live.data.errors import DataError
from simpo_live.data.records import PreferenceRecord


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    """The prompt conversation rendered with the generation prompt (e.g. `... <|assistant|>`)."""
    chosen_ids: list[int]
    rejected_ids: list[int]
    source: str
    prompt_text: str
    """The last user message's text: what a person typed, for sample tables and held-out eval prompts."""


def tokenize_records(records: Sequence[PreferenceRecord], tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                     max_prompt_len: int, overlong: str) -> tuple[list[TokenizedPair], int]:
    """(pairs that fit, number dropped). A pair is over-long if its prompt exceeds max_prompt_len or its
    prompt plus its longer response exceeds max_seq_len; overlong='error' raises naming the row."""
    if overlong not in ("error", "drop"):
        raise ValueError(f"overlong must be 'error' or 'drop', got {overlong!r}")
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{tokenizer.name_or_path}: the tokenizer has no chat template; preference data is "
                        f"tokenised with it (add chat_template to tokenizer_config.json or chat_template.jinja)")
    pairs, num_dropped = [], 0
    for pair in _tokenize_all(records, tokenizer):
        prompt_len = len(pair.prompt_ids)
        response_len = max(len(pair.chosen_ids), len(pair.rejected_ids))
        if prompt_len <= max_prompt_len and prompt_len + response_len <= max_seq_len:
            pairs.append(pair)
        elif overlong == "drop":
            num_dropped += 1
        else:
            raise DataError(
                f"{pair.source}: pair is too long: prompt {prompt_len} tokens (data.max_prompt_len="
                f"{max_prompt_len}), prompt + longer response {prompt_len + response_len} tokens "
                f"(data.max_seq_len={max_seq_len}); raise the limits or set data.overlong=drop"
            )
    return pairs, num_dropped


def _tokenize_all(records: Sequence[PreferenceRecord], tokenizer: PreTrainedTokenizerBase,
                  chunk_size: int = 256) -> Iterator[TokenizedPair]:
    """Render three texts per record (prompt, prompt + chosen, prompt + rejected) and encode them a chunk at
    a time: one batched call to a fast tokenizer is several times quicker than one call per text."""
    for start in range(0, len(records), chunk_size):
        chunk = records[start:start + chunk_size]
        texts = []
        for record in chunk:
            texts.append(_render(tokenizer, record.prompt_messages, add_generation_prompt=True))
            for answer in (record.chosen, record.rejected):
                messages = [*record.prompt_messages, {"role": "assistant", "content": answer}]
                texts.append(_render(tokenizer, messages, add_generation_prompt=False))
        # The rendered template already holds its special tokens (BOS included); don't add them twice.
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        for i, record in enumerate(chunk):
            yield _split_responses(record, *(list(x) for x in ids[3 * i:3 * i + 3]))


def _split_responses(record: PreferenceRecord, prompt_ids: list[int], chosen_full: list[int],
                     rejected_full: list[int]) -> TokenizedPair:
    """Response ids = conversation ids after the prompt ids, once checked that the prompt is a prefix."""
    responses = []
    for field, full_ids in (("chosen", chosen_full), ("rejected", rejected_full)):
        if full_ids[: len(prompt_ids)] != prompt_ids:
            mismatch = next((i for i, (a, b) in enumerate(zip(full_ids, prompt_ids)) if a != b),
                            min(len(full_ids), len(prompt_ids)))
            raise DataError(
                f"{record.source}: the chat template does not render the prompt as a prefix of the conversation "
                f"with the {field} answer (tokens differ from position {mismatch}); the response tokens cannot "
                f"be separated from the prompt with this tokenizer/template"
            )
        response_ids = full_ids[len(prompt_ids):]
        if not response_ids:
            raise DataError(f"{record.source}: the {field} answer renders to no tokens")
        responses.append(response_ids)
    user_texts = [m["content"] for m in record.prompt_messages if m["role"] == "user"]
    return TokenizedPair(prompt_ids=prompt_ids, chosen_ids=responses[0], rejected_ids=responses[1],
                         source=record.source, prompt_text=user_texts[-1] if user_texts else "")


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
