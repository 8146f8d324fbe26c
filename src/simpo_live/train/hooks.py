"""Hooks run after scheduled steps. "Step N" means N optimizer updates completed; step 0 is before training.

A hook is a plain callable `hook(ctx) -> dict | None` registered with a schedule; the metrics it returns are
logged as their own line for that step. `every=N` hooks also fire after the last step when `at_end` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Schedule:
    every: int | None = None
    at_steps: frozenset[int] = frozenset()
    at_end: bool = False

    def fires_at(self, step: int, num_steps: int) -> bool:
        if step in self.at_steps:
            return True
        if step == 0:
            return False
        if self.every is not None and step % self.every == 0:
            return True
        return self.at_end and step == num_steps


@dataclass
class Hook:
    name: str
    fn: Callable[[Any], dict[str, Any] | None]
    schedule: Schedule


@dataclass
class HookRegistry:
    hooks: list[Hook] = field(default_factory=list)

    def add(self, name: str, fn: Callable[[Any], dict[str, Any] | None], *, every: int | None = None,
            at_steps: list[int] | None = None, at_end: bool = False) -> None:
        schedule = Schedule(every=every, at_steps=frozenset(at_steps or ()), at_end=at_end)
        self.hooks.append(Hook(name, fn, schedule))

    def run(self, ctx: Any, step: int, num_steps: int) -> Iterator[dict[str, Any] | None]:
        """Run the hooks due after `step`, in registration order, yielding each one's metrics."""
        for hook in self.hooks:
            if hook.schedule.fires_at(step, num_steps):
                yield hook.fn(ctx)
