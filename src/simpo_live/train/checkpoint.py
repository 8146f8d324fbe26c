"""Training checkpoints: `checkpoints/step_NNNNNN/` holds an HF-layout model plus `trainer_state.pt`.

Written to `step_NNNNNN.tmp/` and renamed, so the latest-checkpoint search (which ignores `*.tmp`) never
sees a half-written one. Only the last `keep` checkpoints are kept.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from simpo_live.atomic import atomic_directory
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import load_state_dict, save_model

STATE_FILE = "trainer_state.pt"
CHECKPOINT_NAME = re.compile(r"^step_(\d{6,})$")


@dataclass
class TrainerState:
    """Everything besides the weights a resumed run needs. The data position is the step itself."""

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, model: LlamaModel, state: TrainerState, tokenizer, keep: int) -> Path:
    target = checkpoint_dir(run_dir, state.step)
    with atomic_directory(target) as tmp:
        save_model(model, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save(state.__dict__, tmp / STATE_FILE)
    prune_checkpoints(run_dir, keep)
    return target


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary `*.tmp` directories are not checkpoints)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for _, path in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, model: LlamaModel) -> TrainerState:
    """Load weights into `model` in place (keeping its dtype and device) and return the trainer state."""
    names = [n for n in model.state_dict() if not (model.args.tie_word_embeddings and n == "lm_head.weight")]
    weights = load_state_dict(path, names)
    with torch.no_grad():
        for name, param in model.state_dict().items():
            if name in weights:
                param.copy_(weights[name])
    raw = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    return TrainerState(**raw)
