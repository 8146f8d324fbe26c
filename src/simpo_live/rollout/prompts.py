"""Prompt sources for generation (a text file one per line, JSONL with a "prompt" field, or synthetic from a
template) and their tokenisation through the chat template. No engine or rank logic here."""

from __future__ import annotations

import json
from pathlib import Path

from simpo_live.config.rollout import DEFAULT_SYNTHETIC_TEMPLATE
from simpo_live.errors import UserError


class PromptError(UserError):
    """A prompt source that cannot be read, naming the file and line."""


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a `.jsonl` file (one object with a string "prompt" per line) or a text file (one per
    line). Blank lines are skipped in both."""
    return [prompt for prompt, _ in load_prompts_with_sources(path)]


def load_prompts_with_sources(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, "file:line") for every prompt of the file, so a later error can name the line."""
    path = Path(path)
    if path.is_dir():
        raise PromptError(f"{path}: is a directory, expected a prompts file (text or JSONL)")
    if not path.is_file():
        raise PromptError(f"{path}: prompts file not found")
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PromptError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8") \
            from None
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    is_jsonl = path.suffix == ".jsonl" or (numbered and numbered[0][1].lstrip().startswith("{"))
    if not is_jsonl:
        return [(line, f"{path}:{number}") for number, line in numbered]
    return [(_jsonl_prompt(line, f"{path}:{number}"), f"{path}:{number}") for number, line in numbered]


def _jsonl_prompt(line: str, source: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise PromptError(f"{source}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
        raise PromptError(f"{source}: expected an object with a \"prompt\" string, got {type(record).__name__}")
    if "prompt" not in record:
        raise PromptError(f"{source}: missing field \"prompt\" (has {', '.join(map(repr, record)) or 'no fields'})")
    prompt = record["prompt"]
    if not isinstance(prompt, str):
        raise PromptError(f"{source}: \"prompt\" must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise PromptError(f"{source}: \"prompt\" is empty")
    return prompt


def synthetic_prompts(count: int, template: str = DEFAULT_SYNTHETIC_TEMPLATE) -> list[str]:
    """`count` prompts from `template` with `{index}` replaced by 0, 1, ..."""
    if "{index}" not in template:
        raise PromptError(f"synthetic prompt template must contain {{index}}: {template!r}")
    return [template.replace("{index}", str(i)) for i in range(count)]


def tokenize_prompt(tokenizer, prompt: str, use_chat_template: bool = True) -> list[int]:
    """Token ids for one prompt: as a single user message through the chat template when the tokenizer has one
    and `use_chat_template`, else as raw text the tokenizer's default way (its BOS included)."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False)
        return tokenizer(text, add_special_tokens=False).input_ids  # the template already holds BOS
    return tokenizer(prompt).input_ids
