"""Wire the inference eval into a training session: prompts, the request and memory checks, the rollout, the plan,
the schedule.

This is the trainer's edge: the only eval module that reads the training session. It builds the run's `EvalPlan`
once and, at every scheduled step, a `RolloutContext` of what the call needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from simpo_live.config import config_digest
from simpo_live.config.load import ConfigError
from simpo_live.config.schema import BUNDLED_MODEL
from simpo_live.evals.hook import InferenceEvalHook
from simpo_live.evals.plan import EvalPlan
from simpo_live.evals.sources import resolve_prompts_with_sources
from simpo_live.plan.check import check_request_fits
from simpo_live.rollout.context import replica_dtype, rollout_context
from simpo_live.rollout.requests import RequestKnobs, check_requests_fit
from simpo_live.rollout.reward import BUNDLED_PREFIX, check_reward_context
from simpo_live.rollout.spec import RolloutSpec, engine_config, generation_settings, load_scoring

KNOBS = RequestKnobs(max_new_tokens="inference_eval.max_new_tokens", max_pages="inference_eval.max_pages")


def warn_if_bundled_for_another_model(reward_model: str, model_path: str) -> None:
    """The bundled reward model knows only the bundled task: say so when it scores another model's answers."""
    if reward_model.startswith(BUNDLED_PREFIX) and Path(model_path).resolve() != BUNDLED_MODEL.resolve():
        print(f"warning: inference_eval.reward_model is {reward_model}, which scores the bundled reverse-words task "
              f"only, but model.path is {model_path}: set inference_eval.reward_model to your reward model or null",
              file=sys.stderr)


def eval_prompts(session) -> list[tuple[str, str]]:
    """(prompt, where it comes from) of every eval prompt; none at all is a config error."""
    cfg = session.cfg.inference_eval
    with_sources = resolve_prompts_with_sources(cfg, session.data)
    if not with_sources and cfg.prompts_path is not None:
        raise ConfigError([f"{cfg.prompts_path}: no prompts in the file (inference_eval.prompts_path)"])
    if not with_sources:
        raise ConfigError(["inference_eval: no prompts (set prompts, prompts_path or synthetic_prompt_count; "
                           "held-out prompts need a validation split)"])
    return with_sources


def build_plan(session) -> EvalPlan:
    cfg, trainer = session.cfg.inference_eval, session.cfg.trainer
    with_sources = eval_prompts(session)
    prompts = [p for p, _ in with_sources]
    scoring = load_scoring(cfg, "inference_eval")
    if scoring.reward_model is not None:
        check_reward_context(scoring.reward_model, prompts, cfg.max_new_tokens)
        if session.rank.is_leader:
            warn_if_bundled_for_another_model(cfg.reward_model, session.cfg.model.path)
    longest = check_requests_fit(session.tokenizer, with_sources, cfg.use_chat_template, cfg.max_new_tokens,
                                 session.raw_model.args.max_position_embeddings, KNOBS, cfg.max_pages, cfg.page_size)
    check_request_fits(session.memory_plan, longest.total_tokens, cfg.page_size,
                       f"inference_eval: prompt {longest.index} ({with_sources[longest.index][1]})")
    digest = config_digest(session.cfg)
    rollout = RolloutSpec(
        settings=generation_settings(cfg, cfg.n_samples, cfg.seed if cfg.seed is not None else trainer.seed,
                                     ignore_eos=cfg.ignore_eos, stop_token_ids=tuple(cfg.stop_token_ids or ()),
                                     use_chat_template=cfg.use_chat_template),
        engine=engine_config(cfg, longest.total_tokens), replica_dtype=replica_dtype(cfg.dtype, session.device),
        scoring=scoring, timeout_sec=cfg.timeout_sec or trainer.distributed_timeout_sec,
        provenance={"config_digest": digest}, isolation=cfg.isolation)
    return EvalPlan(
        prompts=prompts, rollout=rollout,
        output_dir=Path(cfg.output_dir or Path(trainer.run_dir) / "inference_eval"),
        schedule=cfg.schedule_steps(trainer.num_train_steps), config_digest=digest,
        reference_lengths={"chosen": [len(p.chosen_ids) for p in session.data.train],
                           "rejected": [len(p.rejected_ids) for p in session.data.train]})


def register_inference_eval(session) -> InferenceEvalHook | None:
    if not session.cfg.inference_eval.enabled:
        return None
    plan = build_plan(session)
    hook = InferenceEvalHook(session.cfg.inference_eval, plan)
    # Runs before the checkpoint of its step, so a resumed run never repeats it (the hook still reuses finished host
    # files and the summary left by a run killed before that checkpoint).
    session.hooks.add("inference_eval", lambda s: hook(rollout_context(s)), at_steps=plan.schedule)
    return hook
