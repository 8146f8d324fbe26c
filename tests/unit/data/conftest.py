"""Helpers for the data tests: write small preference files in every supported format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def conversation(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


ROWS = [
    {"prompt": "w1 w2", "chosen": conversation("w1 w2", "w2 w1"), "rejected": conversation("w1 w2", "w1 w2"),
     "score_chosen": 9.0},
    {"prompt": "w3 w4 w5", "chosen": "w5 w4 w3", "rejected": "w5 w3"},
    {"prompt": "hello", "chosen": conversation("hello", "world"), "rejected": conversation("hello", "hello")},
]


@pytest.fixture
def rows() -> list[dict]:
    return [dict(row) for row in ROWS]


@pytest.fixture
def write_jsonl(tmp_path):
    def write(rows: list, name: str = "prefs.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    return write
