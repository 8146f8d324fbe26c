"""Before anything is generated: the longest request of a rollout (its longest prompt, as tokenised for
generation, plus max_new_tokens) must fit the model's context and, when the cache has a fixed size, the cache.
The one context-length check of the eval, the on-policy rounds and `simpo-live sample`. Whether the cache fits
beside training is the memory plan's question (plan/), not this module's."""

from __future__ import annotations

from dataclasses import dataclass

from simpo_live.config.load import ConfigError
from simpo_live.engine.capacity import pages_for_tokens
from simpo_live.rollout.prompts import tokenize_prompt


@dataclass(frozen=True)
class RequestKnobs:
    """How the user names the knobs a refusal points at (config keys, or the command's options)."""

    max_new_tokens: str
    max_pages: str = ""


@dataclass(frozen=True)
class LongestRequest:
    index: int  # the prompt's global index
    prompt_tokens: int
    total_tokens: int  # prompt + max_new_tokens


def longest_request(tokenizer, prompts: list[str], use_chat_template: bool, max_new_tokens: int) -> LongestRequest:
    """The longest prompt as tokenised for generation, plus max_new_tokens; index 0 and 0 tokens for no prompts."""
    lengths = [len(tokenize_prompt(tokenizer, p, use_chat_template)) for p in prompts]
    index = max(range(len(lengths)), key=lengths.__getitem__) if lengths else 0
    prompt_tokens = lengths[index] if lengths else 0
    return LongestRequest(index, prompt_tokens, max(prompt_tokens, 1) + max_new_tokens)


def check_requests_fit(tokenizer, prompts: list[tuple[str, str]], use_chat_template: bool, max_new_tokens: int,
                       context: int, knobs: RequestKnobs, max_pages: int | None = None, page_size: int = 1
                       ) -> LongestRequest:
    """Refuse (ConfigError naming the prompt by index and source) a longest request over the model's context or
    over a fixed cache of `max_pages` pages; returns it."""
    longest = longest_request(tokenizer, [p for p, _ in prompts], use_chat_template, max_new_tokens)
    which = f"prompt {longest.index} ({prompts[longest.index][1]})" if prompts else "a prompt"
    if longest.total_tokens > context:
        raise ConfigError([f"{which} has {longest.prompt_tokens} tokens; + {knobs.max_new_tokens} ({max_new_tokens}) "
                           f"= {longest.total_tokens} tokens exceeds the model's context of {context}: lower "
                           f"{knobs.max_new_tokens} or shorten the prompt"])
    pages = pages_for_tokens(longest.total_tokens, page_size)
    if max_pages is not None and pages > max_pages:
        raise ConfigError([f"{which} needs {longest.total_tokens} tokens = {pages} pages of {page_size} tokens but "
                           f"the KV cache would hold {max_pages}: raise {knobs.max_pages}, or lower "
                           f"{knobs.max_new_tokens}"])
    return longest
