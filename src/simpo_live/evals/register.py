"""Wire the inference eval into a training session: prompts, scorers, pre-flight check, the plan, the schedule.

This is the trainer's edge: the only eval module that reads the training session. It builds the run's `EvalPlan`
once and, at every scheduled step, an `EvalContext` of what the call needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from simpo_live.config import config_digest
from simpo_live.config.load import ConfigError
from simpo_live.config.schema import BUNDLED_MODEL
from simpo_live.distributed.parallel import is_sharded
from simpo_live.evals.context import EvalContext, EvalPlan
from simpo_live.evals.generation import GenerationSettings
from simpo_live.evals.hook import InferenceEvalHook
from simpo_live.evals.preflight import check_eval_fits
from simpo_live.evals.reward import (
    BUNDLED_PREFIX,
    check_reward_context,
    inspect_reward_model,
    reward_dtype,
    reward_model_bytes,
)
from simpo_live.evals.scorer import load_scorer
from simpo_live.evals.sources import resolve_prompts_with_sources
from simpo_live.model.checkpoint import DTYPES


def eval_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The eval replica's dtype: auto is a bf16 copy on CUDA and the training weights as they are elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return DTYPES[name]


def warn_if_bundled_for_another_model(reward_model: str, model_path: str) -> None:
    """The bundled reward model knows only the bundled task: say so when it scores another model's answers."""
    if reward_model.startswith(BUNDLED_PREFIX) and Path(model_path).resolve() != BUNDLED_MODEL.resolve():
        print(f"warning: inference_eval.reward_model is {reward_model}, which scores the bundled reverse-words task "
              f"only, but model.path is {model_path}: set inference_eval.reward_model to your reward model or null",
              file=sys.stderr)


def eval_context(session) -> EvalContext:
    return EvalContext(step=session.step, rank=session.rank, device=session.device, model=session.raw_model,
                       tokenizer=session.tokenizer, tracker=session.tracker, progress=session.progress)


def register_inference_eval(session) -> InferenceEvalHook | None:
    cfg = session.cfg.inference_eval
    if not cfg.enabled:
        return None
    with_sources = resolve_prompts_with_sources(cfg, session.data)
    prompts, sources = [p for p, _ in with_sources], [s for _, s in with_sources]
    if not prompts and cfg.prompts_path is not None:
        raise ConfigError([f"{cfg.prompts_path}: no prompts in the file (inference_eval.prompts_path)"])
    if not prompts:
        raise ConfigError(["inference_eval: no prompts (set prompts, prompts_path or synthetic_prompt_count; "
                           "held-out prompts need a validation split)"])
    scorer = load_scorer(cfg.scorer)
    reward_model = inspect_reward_model(cfg.reward_model) if cfg.reward_model else None
    if reward_model is not None:
        check_reward_context(reward_model, prompts, cfg.max_new_tokens)
        if session.rank.is_leader:
            warn_if_bundled_for_another_model(cfg.reward_model, session.cfg.model.path)
    scoring_bytes = reward_model_bytes(reward_model, reward_dtype(cfg.reward_model_dtype, session.device),
                                       cfg.reward_batch_tokens) if reward_model else 0
    engine_dtype = eval_dtype(cfg.dtype, session.device)
    # The engine keeps its KV cache in the dtype it computes in: the replica's, else the training weights'.
    kv_dtype = engine_dtype or session.raw_model.lm_head.weight.dtype
    fit = check_eval_fits(cfg, session.raw_model, session.tokenizer, prompts, session.device,
                          session.rank.world_size, is_sharded(session.model), kv_dtype, sources, scoring_bytes)
    trainer = session.cfg.trainer
    steps = cfg.schedule_steps(trainer.num_train_steps)
    plan = EvalPlan(
        prompts=prompts,
        settings=GenerationSettings(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                    top_k=cfg.top_k, n=cfg.n_samples, ignore_eos=cfg.ignore_eos,
                                    stop_token_ids=tuple(cfg.stop_token_ids or ()),
                                    seed=cfg.seed if cfg.seed is not None else trainer.seed,
                                    use_chat_template=cfg.use_chat_template),
        # Slots no longer than the longest request (not the model's context): shorter slots, hence more of them.
        engine=cfg.engine_config(fit.longest_request_tokens),
        engine_dtype=engine_dtype,
        output_dir=Path(cfg.output_dir or Path(trainer.run_dir) / "inference_eval"),
        schedule=steps,
        config_digest=config_digest(session.cfg),
        timeout_sec=cfg.timeout_sec or trainer.distributed_timeout_sec,
        reference_lengths={"chosen": [len(p.chosen_ids) for p in session.data.train],
                           "rejected": [len(p.rejected_ids) for p in session.data.train]},
        scorer=scorer,
        reward_model=reward_model,
    )
    hook = InferenceEvalHook(cfg, plan)
    # Runs before the checkpoint of its step, so a resumed run never repeats it (the hook still reuses finished host
    # files and the summary left by a run killed before that checkpoint).
    session.hooks.add("inference_eval", lambda s: hook(eval_context(s)), at_steps=steps)
    return hook
