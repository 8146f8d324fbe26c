"""Wire the inference eval into a training session: prompts, scorers, pre-flight check, the plan, the schedule.

This is the trainer's edge: the only eval module that reads the training session. It builds the run's `EvalPlan`
once and, at every scheduled step, an `EvalContext` of what the call needs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from simpo_live.config import config_digest
from simpo_live.config.load import ConfigError
from simpo_live.distributed.parallel import is_sharded
from simpo_live.evals.context import EvalContext, EvalPlan
from simpo_live.evals.generation import GenerationSettings
from simpo_live.evals.hook import InferenceEvalHook
from simpo_live.evals.preflight import check_eval_fits
from simpo_live.evals.reward import check_reward_context, inspect_reward_model, reward_dtype, reward_model_bytes
from simpo_live.evals.scorer import load_scorer
from simpo_live.evals.sources import resolve_prompts

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def eval_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The eval replica's dtype: auto is a bf16 copy on CUDA and the training weights as they are elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return DTYPES[name]


def eval_context(session) -> EvalContext:
    return EvalContext(step=session.step, rank=session.rank, device=session.device, model=session.raw_model,
                       tokenizer=session.tokenizer, tracker=session.tracker, progress=session.progress)


def register_inference_eval(session) -> InferenceEvalHook | None:
    cfg = session.cfg.inference_eval
    if not cfg.enabled:
        return None
    prompts = resolve_prompts(cfg, session.data)
    if not prompts:
        raise ConfigError(["inference_eval: no prompts (set prompts, prompts_path or synthetic_prompt_count; "
                           "held-out prompts need a validation split)"])
    scorer = load_scorer(cfg.scorer)
    reward_model = inspect_reward_model(cfg.reward_model) if cfg.reward_model else None
    if reward_model is not None:
        check_reward_context(reward_model, prompts, cfg.max_new_tokens)
    scoring_bytes = reward_model_bytes(reward_model, reward_dtype(cfg.reward_model_dtype, session.device),
                                       cfg.reward_batch_tokens) if reward_model else 0
    fit = check_eval_fits(cfg, session.raw_model, session.tokenizer, prompts, session.device,
                          session.rank.world_size, is_sharded(session.model), scoring_bytes)
    trainer = session.cfg.trainer
    steps = cfg.schedule_steps(trainer.num_train_steps)
    plan = EvalPlan(
        prompts=prompts,
        settings=GenerationSettings(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                    top_k=cfg.top_k, n=cfg.n_samples, ignore_eos=cfg.ignore_eos,
                                    seed=cfg.seed if cfg.seed is not None else trainer.seed,
                                    use_chat_template=cfg.use_chat_template),
        # Slots no longer than the longest request (not the model's context): shorter slots, hence more of them.
        engine=cfg.engine_config(fit.longest_request_tokens),
        engine_dtype=eval_dtype(cfg.dtype, session.device),
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
    session.hooks.add("inference_eval", lambda s: hook(eval_context(s)), at_steps=steps, rerun_on_resume=True)
    return hook
