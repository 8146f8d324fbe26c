"""Prompt sources for generation (a text file one per line, JSONL with a "prompt" field, or synthetic from a
template) and their tokenisation through the chat template. No engine or rank logic here."""

from __future__ import annotations

import json
from pathlib import Path

from simpo_live.errors import UserError

DEFAULT_SYNTHETIC_TEMPLATE = "Write a short story about item number {index}."


class PromptError(UserError):
    """A prompt source that cannot be read, naming the file and line."""


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a `.jsonl` file (one object with a string "prompt" per line) or a text file (one per
    line). Blank lines are skipped in both."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"{path}: prompts file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((line for line in lines if line.strip()), "")
    if path.suffix != ".jsonl" and not first.lstrip().startswith("{"):
        return [line for line in lines if line.strip()]
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptError(f"{path}:{number}: not valid JSON ({e})") from e
        prompt = record.get("prompt") if isinstance(record, dict) else None
        if not isinstance(prompt, str):
            raise PromptError(f"{path}:{number}: \"prompt\" must be a string, got {type(prompt).__name__}")
        prompts.append(prompt)
    return prompts


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
