"""Wire on-policy rounds into a training session: the prompt pool, the score source, the plan, the data source
switch, the schedule, and (on resume) the pairs of the latest committed round. The only onpolicy module that
reads the training session."""

from __future__ import annotations

from pathlib import Path

from simpo_live.config import config_digest
from simpo_live.config.load import ConfigError
from simpo_live.errors import UserError
from simpo_live.evals.generation import GenerationSettings, longest_prompt
from simpo_live.evals.prompts import load_prompts_with_sources
from simpo_live.evals.register import eval_context, eval_dtype
from simpo_live.evals.reward import check_reward_context, inspect_reward_model, reward_dtype
from simpo_live.evals.scorer import load_scorer
from simpo_live.onpolicy.files import read_pair_rows, read_summary, round_dir, tokenize_pair_rows
from simpo_live.onpolicy.plan import RoundPlan, sampling_seed
from simpo_live.onpolicy.round import OnPolicyRound
from simpo_live.onpolicy.source import OnPolicyPairs


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


def check_requests_fit(pool: list[tuple[str, str]], cfg, session) -> int:
    """The longest request (prompt + max_new_tokens) must fit the model's context; returns its length."""
    index, prompt_tokens = longest_prompt(session.tokenizer, [p for p, _ in pool], True)
    longest = max(prompt_tokens, 1) + cfg.max_new_tokens
    context = session.raw_model.args.max_position_embeddings
    if longest > context:
        raise ConfigError([f"onpolicy: prompt {pool[index][1]} has {prompt_tokens} tokens; + max_new_tokens "
                           f"({cfg.max_new_tokens}) = {longest} exceeds the model's context of {context}: lower "
                           "onpolicy.max_new_tokens"])
    return longest


def build_plan(session) -> RoundPlan:
    cfg, trainer = session.cfg.onpolicy, session.cfg.trainer
    pool = prompt_pool(cfg, session)
    longest = check_requests_fit(pool, cfg, session)
    reward_model = inspect_reward_model(cfg.reward_model, "onpolicy.reward_model") if cfg.reward_model else None
    if reward_model is not None:
        check_reward_context(reward_model, [p for p, _ in pool], cfg.max_new_tokens, "onpolicy")
    seed = cfg.seed if cfg.seed is not None else sampling_seed(trainer.seed)
    return RoundPlan(
        pool=pool, prompts_per_round=cfg.prompts_per_round, schedule=cfg.schedule_steps(trainer.num_train_steps),
        settings=GenerationSettings(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                    top_k=cfg.top_k, n=cfg.samples_per_prompt, seed=seed),
        engine=cfg.engine_config(longest), engine_dtype=eval_dtype(cfg.dtype, session.device),
        output_dir=Path(trainer.run_dir) / "onpolicy", seed=trainer.seed,
        score_source=f"reward_model:{cfg.reward_model}" if reward_model else f"scorer:{cfg.scorer}",
        scorer=load_scorer(cfg.scorer), reward_model=reward_model,
        reward_dtype=reward_dtype(cfg.reward_model_dtype, session.device),
        reward_batch_tokens=cfg.reward_batch_tokens, max_seq_len=session.cfg.data.max_seq_len,
        max_prompt_len=session.cfg.data.max_prompt_len, config_digest=config_digest(session.cfg),
        timeout_sec=cfg.timeout_sec or trainer.distributed_timeout_sec)


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
    session.hooks.add("onpolicy", lambda s: hook(eval_context(s)), at_steps=plan.schedule)
    return hook
