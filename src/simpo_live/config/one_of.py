"""One-of groups (an eval's prompt source, its schedule, an on-policy score source...): the later layer chooses.

A group member set (not null) in a later layer (a config file over the preset, an override over the file)
replaces every other member inherited from earlier layers; two members set in the same layer are an error naming
both. The rule lives here once, for every group; `Choice` records which layer chose, for `--help` and
`simpo-live config`. Whether a group may be empty is the schema's business, not this module's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from simpo_live.config.layers import Layer, sets_key, value_at


@dataclass(frozen=True)
class OneOf:
    what: str  # "prompt source", as a message says it
    section: str
    keys: tuple[str, ...]

    def dotted(self) -> list[str]:
        return [f"{self.section}.{key}" for key in self.keys]


ONE_OF = (
    OneOf("prompt source", "inference_eval",
          ("prompts", "prompts_path", "synthetic_prompt_count", "heldout_prompt_count")),
    OneOf("eval schedule", "inference_eval", ("eval_at_steps", "eval_every")),
    OneOf("score source", "onpolicy", ("scorer", "reward_model")),
    OneOf("round schedule", "onpolicy", ("at_steps", "every")),
)


@dataclass(frozen=True)
class Choice:
    """`key` (set at `origin`) is its group's member; `replaced` lists (key, origin) of the inherited ones it
    replaced."""

    group: OneOf
    key: str
    origin: str
    replaced: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """'the prompt source, from my.yaml:7 (replaces inference_eval.heldout_prompt_count from preset ...)'"""
        text = f"the {self.group.what}, from {self.origin}"
        if self.replaced:
            text += " (replaces " + "; ".join(f"{key} from {origin}" for key, origin in self.replaced) + ")"
        return text


def _given(layer: Layer, group: OneOf) -> list[str]:
    return [key for key in group.dotted() if value_at(layer.data, key, None) is not None]


def _drop(layer: Layer, key: str) -> None:
    section, name = key.rsplit(".", 1)
    node = value_at(layer.data, section, None)
    if isinstance(node, dict):
        node.pop(name, None)
    layer.origins.pop(key, None)


def choose_one_of(layers: list[Layer]) -> tuple[list[Layer], list[Choice], list[str]]:
    """(layers with every replaced member removed, the choice of each group that has a member, problems).

    For a same-layer conflict only the first member stays in the returned layers, so the schema does not report
    the same conflict a second time."""
    layers = [Layer(layer.name, copy.deepcopy(layer.data), dict(layer.origins)) for layer in layers]
    choices, problems = [], []
    for group in ONE_OF:
        choice, replaced = None, []
        for i, layer in enumerate(layers):
            given = _given(layer, group)
            if choice is not None and sets_key(layer, choice.key) and not given:
                choice = None  # a later layer set the chosen member to null: the group has none now
            if not given:
                continue
            if len(given) > 1:
                origins = "; ".join(f"{key} from {layer.origins.get(key, layer.name)}" for key in given)
                problems.append(f"{group.section}: give at most one {group.what} in one layer, got "
                                f"{' and '.join(given)} ({origins}); a later layer's {group.what} replaces "
                                "an inherited one, so set only one here")
                for key in given[1:]:
                    _drop(layer, key)
            key = given[0]
            for earlier in layers[:i]:
                for other in _given(earlier, group):
                    if other != key:
                        replaced.append((other, earlier.origins.get(other, earlier.name)))
                        _drop(earlier, other)
            choice = Choice(group, key, layer.origins.get(key, layer.name), tuple(replaced))
        if choice is not None:
            choices.append(choice)
    return layers, choices, problems
