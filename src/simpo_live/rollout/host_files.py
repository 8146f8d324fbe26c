"""Per-host JSONL files: `host_<rank>_of_<P>.jsonl` beside a `host_<rank>_of_<P>.done` marker in one directory.

Each process that produces rows for a step writes its own file atomically, then the marker; a file counts as
finished only once its marker exists. This module is the one place that names, writes and reads them (every
rollout, `simpo-live sample`, the report). Row contents are the writer's business.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simpo_live.atomic import atomic_write

HOST_FILE_PATTERN = "host_*_of_*.jsonl"


def host_file_name(rank: int, world_size: int) -> str:
    return f"host_{rank:04d}_of_{world_size:04d}.jsonl"


def host_file_path(out_dir: str | Path, rank: int, world_size: int) -> Path:
    return Path(out_dir) / host_file_name(rank, world_size)


def done_marker_path(out_dir: str | Path, rank: int, world_size: int) -> Path:
    return host_file_path(out_dir, rank, world_size).with_suffix(".done")


def is_host_done(out_dir: str | Path, rank: int, world_size: int) -> bool:
    """True once this host's file was fully written (a resumed step skips it)."""
    return done_marker_path(out_dir, rank, world_size).is_file()


def sidecar_path(out_dir: str | Path, rank: int, world_size: int) -> Path:
    """A host's `host_<rank>_of_<P>.stats.json`: what it counted and timed beside its rows."""
    return host_file_path(out_dir, rank, world_size).with_suffix(".stats.json")


def write_host_file(out_dir: str | Path, rows: list[dict[str, Any]], rank: int, world_size: int,
                    sidecar: dict[str, Any] | None = None) -> Path:
    """Write the `sidecar` (when given), then rows to out_dir/host_<rank>_of_<world_size>.jsonl, each atomically,
    then the done marker, which says both are complete; returns the host file's path."""
    if sidecar is not None:
        with atomic_write(sidecar_path(out_dir, rank, world_size)) as f:
            json.dump(sidecar, f)
    path = host_file_path(out_dir, rank, world_size)
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with atomic_write(done_marker_path(out_dir, rank, world_size)) as f:
        f.write(json.dumps({"rows": len(rows), "file": path.name}) + "\n")
    return path


def read_host_file(path: str | Path) -> list[dict[str, Any]]:
    """The rows of one host file, in file order (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_sidecar(out_dir: str | Path, rank: int, world_size: int) -> dict[str, Any]:
    return json.loads(sidecar_path(out_dir, rank, world_size).read_text())


def read_host_files(out_dir: str | Path, world_size: int) -> list[dict[str, Any]]:
    """All hosts' rows in global order (prompt index, then sample index); an unfinished host is an error."""
    rows = []
    for rank in range(world_size):
        if not is_host_done(out_dir, rank, world_size):
            raise FileNotFoundError(f"{host_file_path(out_dir, rank, world_size)}: host {rank} of {world_size} has "
                                    "not finished (no done marker)")
        rows += read_host_file(host_file_path(out_dir, rank, world_size))
    return sorted(rows, key=lambda r: (r["global_prompt_index"], r["sample_index"]))


def host_files_in(out_dir: str | Path) -> list[Path]:
    """Every host file in `out_dir`, whatever world size wrote it, sorted by name."""
    return sorted(Path(out_dir).glob(HOST_FILE_PATTERN))
