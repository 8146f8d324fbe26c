"""What a run directory is, and checks that an output path can be written before any work starts.

Shared by `train` (its run_dir and other outputs) and `report` (which only reads a run and writes report.html).
"""

from __future__ import annotations

import os
from pathlib import Path

from simpo_live.errors import RunDirError

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints")


def is_run_dir(path: str | Path) -> bool:
    return any((Path(path) / marker).exists() for marker in RUN_MARKERS)


def require_run_dir(path: str | Path, writable: bool = True) -> Path:
    """`path` as a run directory the report can read and write into (or, not `writable`, read), or a RunDirError
    saying why not."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory")
    if not is_run_dir(path):
        raise RunDirError(f"{path}: not a simpo-live run directory (none of {', '.join(RUN_MARKERS)} in it); "
                          "give the trainer.run_dir of a run")
    if writable and not os.access(path, os.W_OK):
        raise RunDirError(f"{path}: not writable, so report.html cannot be written there")
    return path


def check_writable_dir(path: str | Path, what: str) -> None:
    """`path` is a directory, or can be created as one: not a file, and its nearest existing parent writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{what}={path}: is a file, expected a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"{what}={path}: {existing} is a file, so the directory cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"{what}={path}: {existing} is not writable")
