"""Build everything a training run needs, once: device, data, model, optimizer, resume state, trackers.

The loop state lives in one place, `TrainingSession`; hooks receive it and read what they need.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from simpo_live.config import SimpoConfig, config_to_yaml
from simpo_live.config.load import ConfigError
from simpo_live.data import MicroBatching, PreferenceData, load_preference_data, load_tokenizer
from simpo_live.data.stream import PairStream, SeededPairs
from simpo_live.distributed.env import RankInfo, init_process_group, intra_op_threads, rank_info
from simpo_live.distributed.gather import gather_to_all
from simpo_live.distributed.loading import load_for_training
from simpo_live.distributed.parallel import gathers_in_bf16
from simpo_live.atomic import atomic_write
from simpo_live.model import LlamaModel
from simpo_live.model.checkpoint import CheckpointError, read_model_args
from simpo_live.model.logprobs import resolve_chunk_tokens
from simpo_live.model.lora import peft_config
from simpo_live.plan import MemoryPlan
from simpo_live.plan.check import check_memory_before_training
from simpo_live.tracking import Tracker, build_trackers
from simpo_live.tracking.base import NullTracker
from simpo_live.train.checkpoint import find_resume_point, load_optimizer, restore_rng_state, training_adapters
from simpo_live.train.hooks import HookRegistry
from simpo_live.train.layout import choose_layout
from simpo_live.train.loss import LossOptions
from simpo_live.train.optim import build_optimizer, build_scheduler
from simpo_live.train.ownership import record_config_changes
from simpo_live.train.step import StepSettings
from simpo_live.train.throughput import ModelFlops, device_peak_flops


@dataclass
class TrainingSession:
    cfg: SimpoConfig
    run_dir: Path
    rank: RankInfo
    device: torch.device
    tokenizer: Any
    data: PreferenceData
    raw_model: LlamaModel  # the plain module: what checkpoints and the inference engine read
    model: torch.nn.Module  # what training calls: raw_model, or its DDP/FSDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step_settings: StepSettings
    batching: MicroBatching
    pad_id: int
    tracker: Tracker
    memory_plan: MemoryPlan
    """The per-rank memory plan checked before step 1; rollouts check their longest real request against it."""
    pairs: PairStream
    """Where each update's global batch comes from: the offline data (SeededPairs) or on-policy rounds."""
    step: int = 0
    resumed_from: Path | None = None
    last_checkpoint_step: int | None = None
    skipped_updates: int = 0
    """Non-finite updates dropped under trainer.on_non_finite=skip (kept in checkpoints, so a resume goes on)."""
    hooks: HookRegistry = field(default_factory=HookRegistry)
    progress: Any = None


def pick_device(cfg: SimpoConfig, rank: RankInfo) -> torch.device:
    wants_cuda = cfg.trainer.device == "cuda" or (cfg.trainer.device == "auto" and torch.cuda.is_available())
    if wants_cuda and not torch.cuda.is_available():
        raise ConfigError(["trainer.device: cuda was asked for but no CUDA device is available"])
    if wants_cuda:
        torch.cuda.set_device(rank.local_rank)
        return torch.device("cuda", rank.local_rank)
    return torch.device("cpu")


def autocast_dtype(cfg: SimpoConfig, device: torch.device) -> torch.dtype | None:
    if cfg.trainer.precision == "bf16" or (
        cfg.trainer.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    ):
        return torch.bfloat16
    return None


def micro_batch_size_per_rank(cfg: SimpoConfig, world_size: int) -> int:
    global_batch = cfg.trainer.train_batch_size
    if global_batch % world_size:
        raise ConfigError([f"trainer.train_batch_size ({global_batch}) must be divisible by the number of "
                           f"ranks ({world_size})"])
    per_rank = global_batch // world_size
    micro = min(cfg.trainer.micro_batch_size, per_rank)
    if per_rank % micro:
        raise ConfigError([f"trainer.micro_batch_size ({micro}) must divide the per-rank batch ({per_rank} = "
                           f"train_batch_size {global_batch} / {world_size} ranks)"])
    return micro


def training_compute_dtype(cfg: SimpoConfig, raw_model: LlamaModel, device: torch.device) -> torch.dtype:
    """The dtype the forward computes in: autocast's, else FSDP's bf16 all-gather on CUDA (distributed/parallel.py),
    else the weights'."""
    autocast = autocast_dtype(cfg, device)
    if autocast is not None:
        return autocast
    if cfg.trainer.strategy == "fsdp" and gathers_in_bf16(device):
        return torch.bfloat16
    return next(raw_model.parameters()).dtype


def step_settings(cfg: SimpoConfig, raw_model: LlamaModel, device: torch.device) -> StepSettings:
    compute_dtype = training_compute_dtype(cfg, raw_model, device)
    trainer = cfg.trainer
    return StepSettings(
        cfg.beta, cfg.gamma_beta_ratio, cfg.optimizer.max_grad_norm, autocast_dtype(cfg, device), device,
        resolve_chunk_tokens(trainer.logprob_chunk_tokens, raw_model.args.vocab_size),
        loss_options=LossOptions(trainer.loss_type, trainer.label_smoothing, trainer.sft_weight),
        model_flops=ModelFlops.of(raw_model.args),
        peak_flops=device_peak_flops(device, compute_dtype, trainer.peak_flops))


def check_same_resume_point(resume_path: Path | None, rank: RankInfo, timeout_sec: float) -> None:
    """Every rank must resume from the same checkpoint: each one reads run_dir itself, and ranks that started at
    different steps would run mismatched collectives (a hang or silent garbage) instead of failing here."""
    seen = gather_to_all(resume_path.name if resume_path else None, rank, timeout_sec, "finding the checkpoint")
    if len(set(seen)) > 1:
        found = ", ".join(f"rank {i}: {name or 'no checkpoint'}" for i, name in enumerate(seen))
        raise CheckpointError(f"ranks disagree on the checkpoint to resume from ({found}); every rank reads "
                              "trainer.run_dir, so it must be on a filesystem all nodes share")


def build_session(cfg: SimpoConfig, verbose: bool = False) -> TrainingSession:
    """Everything the loop needs, read and checked (data, tokenizer, model, resume checkpoint) without writing
    anything: the run directory is only touched by `open_run_dir`, once every input is known to be good.
    `verbose`: print the memory plan's every term, not its one-line summary."""
    rank = rank_info()
    threads = intra_op_threads(cfg.trainer.num_threads)
    if threads is not None:
        torch.set_num_threads(threads)
    device = pick_device(cfg, rank)
    init_process_group(rank, device, cfg.trainer.distributed_timeout_sec, force=cfg.trainer.strategy == "fsdp")
    micro_batch_size = micro_batch_size_per_rank(cfg, rank.world_size)
    random.seed(cfg.trainer.seed)
    torch.manual_seed(cfg.trainer.seed)
    run_dir = Path(cfg.trainer.run_dir)

    args = read_model_args(cfg.model.path)  # a bad model directory is named as one before its tokenizer is read
    tokenizer = load_tokenizer(cfg.model.tokenizer_path or cfg.model.path)
    data = load_preference_data(cfg.data, tokenizer, cfg.trainer.seed)
    lora = peft_config(cfg.lora, str(Path(cfg.model.path).resolve())) if cfg.lora.enabled else None
    resume = find_resume_point(run_dir, args, lora)
    resume_path, state = (resume.path, resume.state) if resume else (None, None)
    if resume and resume.skipped and rank.is_leader:
        for path, reason in resume.skipped:
            print(f"warning: skipping checkpoint {path.name}: {reason}", file=sys.stderr)
        print(f"warning: resuming from the older checkpoint {resume_path}", file=sys.stderr)
    check_same_resume_point(resume_path, rank, cfg.trainer.distributed_timeout_sec)
    # A checkpoint is an HF model directory: a resumed run loads its weights the way a new one loads model.path.
    # With LoRA the base is always model.path, and the adapters are the checkpoint's (or new, from the seed).
    adapters = training_adapters(lora, args, resume_path, cfg.trainer.seed)
    weights_dir = cfg.model.path if adapters else (resume_path or cfg.model.path)
    raw_model, model = load_for_training(weights_dir, cfg.trainer.strategy, rank, device, cfg.model.dtype,
                                         cfg.trainer.activation_checkpointing, adapters)
    memory_plan = check_memory_before_training(cfg, raw_model.args, rank.world_size, device, data.train,
                                               rank.is_leader, verbose=verbose)

    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = build_scheduler(optimizer, cfg.trainer.num_train_steps, cfg.optimizer)
    if state is not None:
        load_optimizer(resume_path, state, model, optimizer)
        scheduler.load_state_dict(state.scheduler)
        restore_rng_state(state.rng)

    settings = step_settings(cfg, raw_model, device)
    layout = choose_layout(cfg.trainer.packing, device, training_compute_dtype(cfg, raw_model, device))
    if layout.warning and rank.is_leader:
        print(f"warning: {layout.warning}", file=sys.stderr)
    return TrainingSession(
        cfg=cfg, run_dir=run_dir, rank=rank, device=device, tokenizer=tokenizer, data=data,
        raw_model=raw_model, model=model, optimizer=optimizer, scheduler=scheduler, step_settings=settings,
        batching=MicroBatching(layout.packed, micro_batch_size, cfg.micro_batch_tokens()),
        pad_id=tokenizer.pad_token_id, tracker=NullTracker(), memory_plan=memory_plan,
        pairs=SeededPairs(data.train, cfg.trainer.train_batch_size, cfg.trainer.seed),
        step=state.step if state else 0, resumed_from=resume_path,
        last_checkpoint_step=state.step if state else None, skipped_updates=state.skipped_updates if state else 0,
    )


def open_run_dir(session: TrainingSession, config_changes: dict[str, tuple[Any, Any]]) -> None:
    """Write config.yaml (and an accepted config change) and start the trackers: the first writes of a run."""
    cfg, run_dir = session.cfg, session.run_dir
    if session.rank.is_leader:
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_changes:
            record_config_changes(run_dir, config_changes, session.step)
        with atomic_write(run_dir / "config.yaml") as f:
            f.write(config_to_yaml(cfg))
    # A fresh start keeps no rows of an earlier attempt (-1: nothing was logged before step 0 completed).
    session.tracker = build_trackers(cfg.tracker, run_dir, session.step if session.resumed_from else -1,
                                     session.rank.is_leader, cfg.model_dump(mode="json"))
