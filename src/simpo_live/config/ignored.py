"""Inputs the run would ignore: scheduled work past the last step, empty schedules, keys with no effect in the mode
chosen. Each becomes an error or a one-line warning naming the key and the layer that set it; nothing is dropped
silently.

Scheduled work that would never run is an error when its key was set in the same layer as `trainer.num_train_steps`
or a later one (the user asked for both), and a warning when a later layer shortened the run (the run is what that
later layer asked for). A key that only has no effect is a warning. Values from the schema or the embedded preset
that merely go unused are not the user's input and stay quiet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from simpo_live.config.layers import Layer, setting_of, value_at
from simpo_live.config.schema import SimpoConfig

HORIZON = "trainer.num_train_steps"


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def schema_default(key: str) -> Any:
    model: type[BaseModel] = SimpoConfig
    parts = key.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation
    return model.model_fields[parts[-1]].get_default(call_default_factory=True)


class Inputs:
    """The resolved values and, per key, the layer that set it."""

    def __init__(self, cfg: SimpoConfig, layers: list[Layer]):
        self.values = cfg.model_dump(mode="json")
        self.layers = layers

    def value(self, key: str) -> Any:
        return value_at(self.values, key)

    def layer(self, key: str) -> int:
        found = setting_of(self.layers, key)
        return found[0] if found else -1

    def origin(self, key: str) -> str:
        found = setting_of(self.layers, key)
        return found[1] if found else "schema default"

    def user_set(self, key: str) -> bool:
        """Set by the user's file or overrides (not the preset) to something other than its schema default."""
        value = self.value(key)
        return self.layer(key) >= 1 and value is not None and value != schema_default(key)

    def sources(self, *keys: str) -> str:
        return "(" + "; ".join(f"{key} from {self.origin(key)}" for key in keys) + ")"


def _show(value: Any) -> str:
    return json.dumps(value)


def _steps(steps: list[int]) -> str:
    return ("step " if len(steps) == 1 else "steps ") + ", ".join(map(str, steps))


def _are(steps: list[int]) -> str:
    return "is" if len(steps) == 1 else "are"


def _lost_work(inputs: Inputs, findings: Findings, key: str, fact: str, lost: str) -> None:
    """`key`'s scheduled work past the horizon: an error unless a later layer than key's shortened the run."""
    sources = inputs.sources(key, HORIZON)
    if inputs.layer(key) >= inputs.layer(HORIZON):
        findings.errors.append(f"{key}: {fact}, so {lost} would never run: change {key} or raise {HORIZON} {sources}")
    else:
        findings.warnings.append(f"{key}: {fact}, so {lost} will not run {sources}")


def check_eval_schedule(cfg: SimpoConfig, inputs: Inputs, findings: Findings) -> None:
    ie, num_steps = cfg.inference_eval, cfg.trainer.num_train_steps
    if not ie.enabled:
        return
    key = "inference_eval.eval_every" if ie.eval_every is not None else "inference_eval.eval_at_steps"
    if not ie.schedule_steps(num_steps):
        why = ("inference_eval.eval_at_steps is empty" if ie.eval_at_steps == [] else
               f"{key} ({_show(inputs.value(key))}) lies past {HORIZON} ({num_steps})")
        findings.errors.append(f"inference_eval: enabled, but no eval would run: {why} and eval_before_training is "
                               f"false {inputs.sources('inference_eval.enabled', key, HORIZON)}: schedule an eval "
                               "within the run or set inference_eval.enabled: false")
        return
    past = [s for s in ie.eval_at_steps or [] if s > num_steps]
    if past:
        _lost_work(inputs, findings, "inference_eval.eval_at_steps",
                   f"{_steps(past)} {_are(past)} past {HORIZON} ({num_steps})",
                   "that eval" if len(past) == 1 else "those evals")
    if ie.eval_every is not None and ie.eval_every > num_steps:
        _lost_work(inputs, findings, key, f"{ie.eval_every} is more than {HORIZON} ({num_steps})",
                   "the periodic evals (all but the baseline)")


def check_round_schedule(cfg: SimpoConfig, inputs: Inputs, findings: Findings) -> None:
    op, num_steps = cfg.onpolicy, cfg.trainer.num_train_steps
    if not op.enabled or (op.at_steps is None and op.every is None):
        return  # the schema asks for a schedule
    key = "onpolicy.every" if op.every is not None else "onpolicy.at_steps"
    if not op.schedule_steps(num_steps):
        findings.errors.append(f"onpolicy: enabled, but no round would run before the last update: {key} is "
                               f"{_show(inputs.value(key))} and {HORIZON} is {num_steps} "
                               f"{inputs.sources('onpolicy.enabled', key, HORIZON)}: schedule a round before the last "
                               "update or set onpolicy.enabled: false")
        return
    late = [s for s in op.at_steps or [] if s >= num_steps]
    if late:
        _lost_work(inputs, findings, key, f"{_steps(late)} {_are(late)} not before {HORIZON} ({num_steps}), and a "
                   "round needs updates after it to train on", "that round" if len(late) == 1 else "those rounds")
    if op.every is not None and op.every >= num_steps:
        _lost_work(inputs, findings, key, f"{op.every} is not less than {HORIZON} ({num_steps})",
                   "every round but the one before the first update")


# Periodic work that also happens at the end: a period longer than the run leaves only that last one.
AT_END = {"trainer.checkpoint_every": "the only checkpoint is the final one",
          "trainer.validate_every": "validation runs only before the first update and at the end",
          "hf_save_steps": "the only export is at the end",
          "trainer.log_every": "training metrics are logged after the last update only"}


def check_periods(cfg: SimpoConfig, inputs: Inputs, findings: Findings) -> None:
    num_steps = cfg.trainer.num_train_steps
    for key, consequence in AT_END.items():
        period = inputs.value(key)
        if period is not None and period > num_steps and inputs.layer(key) >= 1:
            findings.warnings.append(f"{key} ({period}) is more than {HORIZON} ({num_steps}): {consequence} "
                                     f"{inputs.sources(key, HORIZON)}")
    if cfg.hf_save_path is not None and cfg.hf_save_steps is None:
        findings.errors.append("hf_save_path is set but hf_save_steps is not, so nothing would be exported: set "
                               f"hf_save_steps {inputs.sources('hf_save_path')}")


def moot_keys(cfg: SimpoConfig) -> Iterator[tuple[list[str], str, str]]:
    """(keys, the key whose value makes them moot, why) for every key with no effect in the mode chosen."""
    ie, op, data, trainer = cfg.inference_eval, cfg.onpolicy, cfg.data, cfg.trainer
    if not ie.enabled:
        yield ["inference_eval.scorer", "inference_eval.reward_model"], "inference_eval.enabled", "evals are off"
    else:
        if ie.temperature == 0:
            yield ["inference_eval.top_p", "inference_eval.top_k"], "inference_eval.temperature", \
                "temperature 0 is greedy"
        if ie.max_pages is not None:
            yield ["inference_eval.hbm_utilization"], "inference_eval.max_pages", "max_pages sizes the KV cache"
        if ie.synthetic_prompt_count is None:
            yield ["inference_eval.synthetic_prompt_template"], "inference_eval.synthetic_prompt_count", \
                "the prompts are not synthetic"
        if ie.reward_model is None:
            yield ["inference_eval.reward_model_dtype", "inference_eval.reward_batch_tokens"], \
                "inference_eval.reward_model", "no reward model is set"
    if not op.enabled:
        yield ["onpolicy.scorer", "onpolicy.reward_model"], "onpolicy.enabled", "on-policy rounds are off"
    elif op.reward_model is None:
        yield ["onpolicy.reward_model_dtype", "onpolicy.reward_batch_tokens"], "onpolicy.reward_model", \
            "no reward model is set"
    if data.validation_path is not None:
        yield ["data.validation_split_fraction"], "data.validation_path", "a validation file is given"
    else:
        yield ["data.validation_split"], "data.validation_path", "validation is split from train_path"
    if not trainer.packing:
        yield ["trainer.micro_batch_tokens"], "trainer.packing", "packing is off"
    if "wandb" not in cfg.tracker.type:
        yield ["tracker.wandb_project", "tracker.wandb_mode"], "tracker.type", "wandb is not among the trackers"


def check_moot_keys(cfg: SimpoConfig, inputs: Inputs, findings: Findings) -> None:
    for keys, cause, why in moot_keys(cfg):
        for key in keys:
            if inputs.user_set(key):
                findings.warnings.append(f"{key} has no effect: {why} {inputs.sources(key, cause)}")


def find_ignored_inputs(cfg: SimpoConfig, layers: list[Layer]) -> Findings:
    """Every input of `layers` (as resolved into `cfg`) that the run would not use."""
    inputs, findings = Inputs(cfg, layers), Findings()
    for check in (check_eval_schedule, check_round_schedule, check_periods, check_moot_keys):
        check(cfg, inputs, findings)
    return findings
