"""Wire on-policy rounds into a training session: the prompt pool, the score source, the plan, the data source
switch, the schedule, and (on resume) the pairs of the latest committed round. The only onpolicy module that
reads the training session."""

from __future__ import annotations

from pathlib import Path

from simpo_live.config import config_digest
from simpo_live.config.load import ConfigError
from simpo_live.errors import UserError
from simpo_live.onpolicy.files import read_pair_rows, read_summary, round_dir, tokenize_pair_rows
from simpo_live.onpolicy.plan import RoundPlan, sampling_seed
from simpo_live.onpolicy.round import OnPolicyRound
from simpo_live.onpolicy.source import OnPolicyPairs
from simpo_live.plan.check import check_request_fits
from simpo_live.rollout.context import replica_dtype, rollout_context
from simpo_live.rollout.prompts import load_prompts_with_sources
from simpo_live.rollout.requests import RequestKnobs, check_requests_fit
from simpo_live.rollout.reward import check_reward_context
from simpo_live.rollout.spec import RolloutSpec, engine_config, generation_settings, load_scoring


KNOBS = RequestKnobs(max_new_tokens="onpolicy.max_new_tokens")


class RoundMissingError(UserError):
    """A resumed run whose checkpoint comes after a round that left no committed files."""


def prompt_pool(cfg, session) -> list[tuple[str, str]]:
    """The prompt file's prompts, or the training pairs' prompts once each (first occurrence, data order)."""
    if cfg.prompts_path is not None:
        pool = load_prompts_with_sources(cfg.prompts_path)
        if not pool:
            raise ConfigError([f"{cfg.prompts_path}: no prompts in the file (onpolicy.prompts_path)"])
        return pool
    seen: dict[str, str] = {}
    for pair in session.data.train:
        seen.setdefault(pair.prompt_text, pair.source)
    return list(seen.items())


def build_plan(session) -> RoundPlan:
    cfg, trainer = session.cfg.onpolicy, session.cfg.trainer
    pool = prompt_pool(cfg, session)
    scoring = load_scoring(cfg, "onpolicy")
    if scoring.reward_model is not None:
        check_reward_context(scoring.reward_model, [p for p, _ in pool], cfg.max_new_tokens, "onpolicy")
    longest = check_requests_fit(session.tokenizer, pool, True, cfg.max_new_tokens,
                                 session.raw_model.args.max_position_embeddings, KNOBS)
    engine = engine_config(cfg, longest.total_tokens)
    check_request_fits(session.memory_plan, longest.total_tokens, engine.page_size,
                       f"onpolicy: prompt {longest.index} ({pool[longest.index][1]})")
    seed = cfg.seed if cfg.seed is not None else sampling_seed(trainer.seed)
    digest = config_digest(session.cfg)
    rollout = RolloutSpec(settings=generation_settings(cfg, cfg.samples_per_prompt, seed), engine=engine,
                          replica_dtype=replica_dtype(cfg.dtype, session.device), scoring=scoring,
                          timeout_sec=cfg.timeout_sec or trainer.distributed_timeout_sec, provenance={})
    return RoundPlan(
        pool=pool, prompts_per_round=cfg.prompts_per_round, schedule=cfg.schedule_steps(trainer.num_train_steps),
        rollout=rollout, output_dir=Path(trainer.run_dir) / "onpolicy", seed=trainer.seed,
        score_source=f"reward_model:{cfg.reward_model}" if scoring.reward_model else f"scorer:{cfg.scorer}",
        max_seq_len=session.cfg.data.max_seq_len, max_prompt_len=session.cfg.data.max_prompt_len,
        config_digest=digest)


def reload_latest_round(plan: RoundPlan, source: OnPolicyPairs, step: int, tokenizer) -> None:
    """At a resume from checkpoint `step`: train on the pairs of the latest round at or before it that made any
    (its round.json exists: checkpoint N is written after round N's commit)."""
    for round_step in reversed([s for s in plan.schedule if s <= step]):
        directory = round_dir(plan.output_dir, round_step)
        summary = read_summary(directory)
        if summary is None:
            raise RoundMissingError(f"{directory}: the on-policy round of step {round_step} has no round.json, but "
                                    f"the run resumes from step {step}; its pairs are gone, so the run cannot "
                                    "continue the same way: restore the directory or use a new trainer.run_dir")
        if summary["metrics"]["training_pairs"] > 0:
            rows = read_pair_rows(directory, summary["process_count"])
            pairs, _ = tokenize_pair_rows(rows, directory, tokenizer, plan.max_seq_len, plan.max_prompt_len)
            source.use_round(round_step, pairs)
            return


def register_onpolicy_rounds(session) -> OnPolicyRound | None:
    """After the eval and before the checkpoint of its step, so checkpoint N means round N is committed."""
    cfg = session.cfg.onpolicy
    if not cfg.enabled:
        return None
    plan = build_plan(session)
    source = OnPolicyPairs(session.pairs, cfg.offline_fraction)
    session.pairs = source
    if session.step > 0:
        reload_latest_round(plan, source, session.step, session.tokenizer)
    hook = OnPolicyRound(plan, source)
    session.hooks.add("onpolicy", lambda s: hook(rollout_context(s)), at_steps=plan.schedule)
    return hook
