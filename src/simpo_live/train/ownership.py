"""A run directory belongs to one run: compare this config with the one saved there before touching anything.

Keys that change what the run computes (model, data, seed, batch, schedule, loss, evals...) must match the saved
`config.yaml`, unless `trainer.allow_config_change` is set, in which case the change is appended to
`config_changes.jsonl`. Keys that only change how the run is watched or paced may differ freely.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simpo_live.atomic import atomic_write
from simpo_live.config import SimpoConfig
from simpo_live.config.load import rename_old_keys
from simpo_live.errors import RunDirError
from simpo_live.distributed.gather import gather_to_all

CHANGES_FILE = "config_changes.jsonl"
# Keys that do not change what the run computes: where outputs go (a moved run is the same run), progress,
# pacing, timeouts, trackers, engine capacity knobs (generations do not depend on batch width or cache size), and
# the opt-in itself.
NEUTRAL_KEYS = (
    "trainer.run_dir", "hf_save_path", "inference_eval.output_dir", "trainer.progress", "trainer.num_threads", "trainer.distributed_timeout_sec", "trainer.keep_last_checkpoints",
    "trainer.allow_config_change", "trainer.preemption_grace_sec", "trainer.log_every", "trainer.on_non_finite",
    "trainer.peak_flops",
    "inference_eval.timeout_sec", "inference_eval.max_seqs", "inference_eval.max_pages",
    "inference_eval.hbm_utilization", "inference_eval.max_tokens_per_round", "inference_eval.max_logged_samples",
    "onpolicy.timeout_sec", "onpolicy.max_seqs", "onpolicy.hbm_utilization", "tracker.",
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_neutral(key: str) -> bool:
    return any(key == n or (n.endswith(".") and key.startswith(n)) for n in NEUTRAL_KEYS)


def read_saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved config a previous run saved (renamed keys under their new names, schema defaults filled in for
    keys added since), or None."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: the saved config of this run directory cannot be read ({e}); "
                          "use a new trainer.run_dir") from None
    if not isinstance(saved, dict):
        raise RunDirError(f"{path}: the saved config of this run directory is not a mapping; use a new trainer.run_dir")
    saved = rename_old_keys(saved)
    try:
        return SimpoConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return saved  # from another version: compare what is there


def config_changes(saved: dict[str, Any], cfg: SimpoConfig) -> dict[str, tuple[Any, Any]]:
    """Key -> (saved value, new value) for every run-changing key that differs."""
    old, new = flatten(saved), flatten(cfg.model_dump(mode="json"))
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k) and not _is_neutral(k)}


def check_run_dir_owner(cfg: SimpoConfig) -> dict[str, tuple[Any, Any]]:
    """Refuse a run directory whose saved config differs in a run-changing key (unless opted in); returns the
    accepted changes (empty when none)."""
    run_dir = Path(cfg.trainer.run_dir)
    saved = read_saved_config(run_dir)
    if saved is None:
        return {}
    changes = config_changes(saved, cfg)
    if changes and not cfg.trainer.allow_config_change:
        listed = "\n".join(f"    {key}: {old!r} in the run, {new!r} now" for key, (old, new) in changes.items())
        raise RunDirError(
            f"{run_dir}: this run directory belongs to a run with another config ({run_dir / 'config.yaml'}); "
            f"differing keys:\n{listed}\n  Either use a new trainer.run_dir, or set trainer.allow_config_change=true "
            f"to resume it with this config (recorded in {run_dir / CHANGES_FILE})")
    return changes


def record_config_changes(run_dir: Path, changes: dict[str, tuple[Any, Any]], step: int) -> None:
    """Append the accepted change to config_changes.jsonl (the leader only)."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resumed_at_step": step,
              "changes": {key: {"was": old, "now": new} for key, (old, new) in changes.items()}}
    path = run_dir / CHANGES_FILE
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    with atomic_write(path) as f:
        f.write(previous + json.dumps(record) + "\n")


def is_finished(session) -> bool:
    """Whether the resumed checkpoint is the final step and the report (written after it) exists: the run is
    done. The leader decides and every rank follows, so all ranks stop or go on together."""
    done = session.step >= session.cfg.trainer.num_train_steps and (session.run_dir / "report.html").is_file()
    return gather_to_all(done, session.rank, session.cfg.trainer.distributed_timeout_sec,
                         "checking whether the run finished")[0]
