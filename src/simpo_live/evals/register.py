"""Wire the inference eval into a training session: prompts, scorer, pre-flight check, schedule."""

from __future__ import annotations

from simpo_live.config.load import ConfigError
from simpo_live.distributed.parallel import is_sharded
from simpo_live.evals.hook import InferenceEvalHook
from simpo_live.evals.preflight import check_eval_fits
from simpo_live.evals.scorer import load_scorer
from simpo_live.evals.sources import resolve_prompts_with_sources


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
    fit = check_eval_fits(cfg, session.raw_model, session.tokenizer, prompts, session.device,
                          session.rank.world_size, is_sharded(session.model), sources)
    reference_lengths = {"chosen": [len(p.chosen_ids) for p in session.data.train],
                         "rejected": [len(p.rejected_ids) for p in session.data.train]}
    hook = InferenceEvalHook(session, prompts, scorer, reference_lengths, fit.longest_request_tokens)
    steps = cfg.schedule_steps(session.cfg.trainer.num_train_steps)
    # Runs before the checkpoint of its step, so a resumed run never needs to repeat it (the hook still reuses
    # finished host files and summaries left by a run killed before that checkpoint).
    session.hooks.add("inference_eval", hook, at_steps=steps)
    return hook
