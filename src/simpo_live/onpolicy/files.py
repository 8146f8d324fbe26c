"""A round's files: `onpolicy/round_<step>/host_<i>_of_<P>.jsonl` (pairs, UltraFeedback layout), each host's
counts and timings beside it (its sidecar, rollout/host_files.py), and the leader's `round.json`, written once every
host is done.

Every write is atomic and a host file counts only once its done marker exists, so a round killed mid-way leaves
nothing a reader would take for output. `round.json` is the round's commit: a resumed run reloads the pairs of the
latest committed round from the host files it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simpo_live.atomic import atomic_write
from simpo_live.data.records import parse_record
from simpo_live.data.tokenize import TokenizedPair, tokenize_records
from simpo_live.onpolicy.pairs import PairRow
from simpo_live.rollout.host_files import host_file_path, is_host_done, read_host_file

SUMMARY = "round.json"


def round_dir(root: Path, step: int) -> Path:
    return root / f"round_{step:06d}"


def read_summary(directory: Path) -> dict[str, Any] | None:
    path = directory / SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def write_summary(directory: Path, summary: dict[str, Any]) -> None:
    with atomic_write(directory / SUMMARY) as f:
        json.dump(summary, f, indent=1)


def read_pair_rows(directory: Path, world_size: int) -> list[PairRow]:
    """Every host's pair rows in global prompt order; a prompt paired twice is an error, not a silent pick."""
    rows: dict[int, PairRow] = {}
    for rank in range(world_size):
        path = host_file_path(directory, rank, world_size)
        if not is_host_done(directory, rank, world_size):
            raise FileNotFoundError(f"{path}: host {rank} of {world_size} has not finished the round")
        for row in map(PairRow.from_json, read_host_file(path)):
            if row.global_prompt_index in rows:
                raise ValueError(f"{path}: prompt {row.global_prompt_index} is paired twice in the round")
            rows[row.global_prompt_index] = row
    return [rows[index] for index in sorted(rows)]


def tokenize_pair_rows(rows: list[PairRow], directory: Path, tokenizer, max_seq_len: int,
                       max_prompt_len: int) -> tuple[list[TokenizedPair], int]:
    """The rows as training pairs, read and tokenised exactly as offline data is (records.parse_record of their
    JSON form, tokenize.tokenize_records); pairs over the data limits are dropped and counted (a round never stops a
    run)."""
    records = [parse_record(row.to_json(), f"{directory.name}:prompt {row.global_prompt_index}") for row in rows]
    return tokenize_records(records, tokenizer, max_seq_len, max_prompt_len, overlong="drop")
