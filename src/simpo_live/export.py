"""`simpo-live export RUN_DIR --merged OUT`: a LoRA run's latest adapters merged into their base model, written as a
Hugging Face model directory that `transformers` loads and `simpo-live sample` runs.

The merge is the eval replica's (`model.lora.merged_model`: peft's merge, into the base in the run's model.dtype),
so an eval of the export generates what the run's eval generated. A full fine-tuning run has nothing to merge: its
checkpoints are model directories already.
"""

from __future__ import annotations

from pathlib import Path

from simpo_live.atomic import atomic_directory
from simpo_live.data import load_tokenizer
from simpo_live.errors import UserError
from simpo_live.model.adapter_files import is_adapter_dir, load_adapters, read_adapter_config
from simpo_live.model.checkpoint import DTYPES, load_model, read_model_args, save_model
from simpo_live.model.lora import adapter_shapes, merged_model
from simpo_live.run_dir import require_run_dir
from simpo_live.train.checkpoint import check_adapter_checkpoint, latest_checkpoint
from simpo_live.train.ownership import read_saved_config


class ExportRefused(UserError):
    """A run directory with nothing to export as a merged model (exit 1)."""


class ExportArgumentError(UserError):
    """An export argument that cannot be used (exit 2)."""

    exit_code = 2


def check_output_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportArgumentError(f"--merged {out_dir}: exists and is not an empty directory; give a new one "
                                  "(nothing is overwritten)")


def run_dtype(run_dir: Path, dtype_name: str) -> str:
    """`auto`: the run's model.dtype (the dtype its base was trained and its eval replica built in on CPU)."""
    if dtype_name != "auto":
        return dtype_name
    saved = read_saved_config(run_dir) or {}
    return (saved.get("model") or {}).get("dtype", "float32")


def export_merged(run_dir: str | Path, out_dir: str | Path, dtype_name: str = "auto",
                  base_dir: str | None = None) -> Path:
    """Merge the latest checkpoint's adapters into their base (`base_dir`, default: adapter_config.json's
    base_model_name_or_path) and write the model and the run's tokenizer to `out_dir`; returns `out_dir`."""
    run_dir, out_dir = require_run_dir(run_dir, writable=False), Path(out_dir)
    check_output_dir(out_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ExportRefused(f"{run_dir}: no checkpoint to export yet (checkpoints/step_*/ with trainer_state.pt)")
    if not is_adapter_dir(checkpoint):
        raise ExportRefused(f"{run_dir}: not a LoRA run (lora.rank is null), so there is nothing to merge: its "
                            f"checkpoints are Hugging Face model directories already, e.g. {checkpoint}")
    config = read_adapter_config(checkpoint)
    base = base_dir or config.base_model_name_or_path
    args = read_model_args(base)
    check_adapter_checkpoint(checkpoint, args, config)
    adapters = load_adapters(checkpoint, list(adapter_shapes(args, config)))
    base_model = load_model(base, dtype=DTYPES[run_dtype(run_dir, dtype_name)])
    merged = merged_model(args, base_model.state_dict(), adapters, config)
    with atomic_directory(out_dir) as tmp:
        save_model(merged, tmp)
        load_tokenizer(checkpoint).save_pretrained(tmp)
    return out_dir
