"""Read preference pairs (UltraFeedback-binarized layout) from JSONL, JSON, Parquet or a saved `datasets` dir.

Each row becomes a `PreferenceRecord`: the prompt conversation plus the chosen and rejected final assistant
answers. A bad row is a `DataError` naming the file, the line or row, and the field. No tokenisation here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpo_live.data.errors import DataError

FORMATS = ".jsonl, .json, .parquet or a saved `datasets` directory"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PreferenceRecord:
    prompt_messages: list[dict]
    """The conversation before the answer, as {"role", "content"} messages (at least one)."""
    chosen: str
    rejected: str
    source: str
    """Where the row came from: "file:line" (JSONL, 1-based) or "file:row N" (0-based)."""


def read_preference_records(path: str | Path, split: str = "train") -> list[PreferenceRecord]:
    """Every row of `path` as a record; `split` picks the split of a saved `datasets` DatasetDict."""
    records = [parse_record(row, source) for row, source in _read_rows(Path(path), split)]
    if not records:
        raise DataError(f"{path}: no preference rows (the file is empty)")
    return records


def _read_rows(path: Path, split: str) -> list[tuple[Any, str]]:
    if path.is_dir():
        return _read_saved_dataset(path, split)
    if not path.exists():
        raise DataError(f"{path}: file not found (expected {FORMATS})")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a damaged or empty file
            raise DataError(f"{path}: cannot read as Parquet ({e})") from e
        return [(row, f"{path}:row {i}") for i, row in enumerate(rows)]
    raise DataError(f"{path}: unknown data format {suffix or '(no extension)'!r}; expected {FORMATS}")


def read_utf8_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; another encoding is a DataError naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None


def _read_jsonl(path: Path) -> list[tuple[Any, str]]:
    rows = []
    for line_number, line in enumerate(read_utf8_lines(path), start=1):
        if not line.strip():
            continue
        try:
            rows.append((json.loads(line), f"{path}:{line_number}"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{line_number}: invalid JSON ({e.msg} at column {e.colno})") from e
    return rows


def _read_json(path: Path) -> list[tuple[Any, str]]:
    try:
        content = json.loads("\n".join(read_utf8_lines(path)) or "[]")
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from e
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        content = content["data"]
    if not isinstance(content, list):
        raise DataError(f"{path}: a .json data file must hold a list of rows or {{\"data\": [rows]}}, "
                        f"got {type(content).__name__}")
    return [(row, f"{path}:row {i}") for i, row in enumerate(content)]


def _read_saved_dataset(path: Path, split: str) -> list[tuple[Any, str]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # FileNotFoundError for a plain directory; arrow/json errors for a damaged one
        raise DataError(f"{path}: a directory but not a saved `datasets` Dataset/DatasetDict that can be read "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    name = str(path)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path}: no split {split!r} in this DatasetDict (has {', '.join(loaded)}); "
                            f"set data.split")
        loaded, name = loaded[split], f"{path}[{split}]"
    return [(row, f"{name}:row {i}") for i, row in enumerate(loaded)]


def parse_record(row: Any, source: str) -> PreferenceRecord:
    """One row -> record. `prompt` is a string (or a message list); `chosen`/`rejected` are strings or
    message lists whose last message is the assistant's answer and whose earlier messages, if any, must
    start with the prompt conversation (system messages may come first) and be the same for both."""
    if not isinstance(row, dict):
        raise DataError(f"{source}: a row must be an object with \"prompt\", \"chosen\" and \"rejected\", "
                        f"got {type(row).__name__}")
    prompt = _prompt_conversation(row, source)
    contexts, answers = [], []
    for field in ("chosen", "rejected"):
        if field not in row:
            raise DataError(f"{source}: missing field \"{field}\"")
        context, answer = _split_answer(row[field], field, source)
        if not context:
            if prompt is None:
                raise DataError(f"{source}: missing field \"prompt\" "
                                f"(needed because \"{field}\" has no prompt messages)")
            context = prompt
        elif prompt is not None and not _starts_with(context, prompt):
            raise DataError(f"{source}: the messages of \"{field}\" before the answer do not start with the "
                            f"prompt conversation {_preview(prompt)}; got {_preview(context)}")
        contexts.append(context)
        answers.append(answer)
    if contexts[0] != contexts[1]:
        raise DataError(f"{source}: \"chosen\" and \"rejected\" have different prompt messages "
                        f"({_preview(contexts[0])} vs {_preview(contexts[1])})")
    return PreferenceRecord(prompt_messages=contexts[0], chosen=answers[0], rejected=answers[1], source=source)


def _starts_with(context: list[dict], prompt: list[dict]) -> bool:
    """Whether the conversation begins with the prompt messages, after any leading system messages."""
    skip = 0
    while skip < len(context) and context[skip]["role"] == "system" and prompt[0]["role"] != "system":
        skip += 1
    return context[skip:skip + len(prompt)] == prompt


def _prompt_conversation(row: dict, source: str) -> list[dict] | None:
    prompt = row.get("prompt")
    if prompt is None:
        return None
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        messages = _messages(prompt, "prompt", source)
        if not messages:
            raise DataError(f"{source}: \"prompt\" is an empty message list")
        return messages
    raise DataError(f"{source}: \"prompt\" must be a string or a list of messages, got {type(prompt).__name__}")


def _split_answer(value: Any, field: str, source: str) -> tuple[list[dict], str]:
    """(messages before the answer, answer text) of a chosen/rejected value."""
    if isinstance(value, str):
        return [], value
    if not isinstance(value, list):
        raise DataError(f"{source}: \"{field}\" must be a string or a list of messages, got {type(value).__name__}")
    messages = _messages(value, field, source)
    if not messages:
        raise DataError(f"{source}: \"{field}\" is an empty message list")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{source}: the last message of \"{field}\" must be from the assistant, "
                        f"got role {messages[-1]['role']!r}")
    return messages[:-1], messages[-1]["content"]


def _messages(value: list, field: str, source: str) -> list[dict]:
    messages = []
    for i, message in enumerate(value):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise DataError(f"{source}: {field}[{i}] must be a message {{\"role\": str, \"content\": str}}, "
                            f"got {_preview(message)}")
        if message["role"] not in ROLES:
            raise DataError(f"{source}: {field}[{i}] has role {message['role']!r}; expected one of "
                            f"{', '.join(ROLES)}")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _preview(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
