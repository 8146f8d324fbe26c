from types import SimpleNamespace

import pytest

from simpo_live.config.schema import OptimizerConfig
from simpo_live.distributed.env import RankInfo
from simpo_live.train.hooks import HookRegistry, Schedule
from simpo_live.train.loop import train_loop
from simpo_live.train.optim import lr_multiplier
from simpo_live.train.preemption import StopRequest


def test_every_fires_on_multiples_and_at_end_only_when_asked():
    every = Schedule(every=3)
    assert [s for s in range(0, 8) if every.fires_at(s, 7)] == [3, 6]
    assert [s for s in range(0, 8) if Schedule(every=3, at_end=True).fires_at(s, 7)] == [3, 6, 7]


def test_exact_steps_fire_exactly_including_zero_and_last():
    schedule = Schedule(at_steps=frozenset({0, 2, 5}))
    assert [s for s in range(0, 6) if schedule.fires_at(s, 5)] == [0, 2, 5]


def test_due_hooks_run_in_registration_order_and_yield_their_metrics():
    hooks = HookRegistry()
    hooks.add("eval", lambda ctx: {"eval": ctx}, at_steps=[4])
    hooks.add("export", lambda ctx: None, every=2)
    hooks.add("later", lambda ctx: {"later": ctx}, at_steps=[6])
    assert list(hooks.run("ctx", 4, 10)) == [{"eval": "ctx"}, None]
    assert list(hooks.run("ctx", 5, 10)) == []
    assert list(hooks.run("ctx", 6, 10)) == [None, {"later": "ctx"}]


class RecordingTracker:
    def __init__(self):
        self.rows = []

    def log(self, metrics, step):
        self.rows.append((step, metrics))


@pytest.mark.parametrize("start", [0, 4])
def test_the_loop_runs_step_0_hooks_before_training_and_a_resumed_run_repeats_none(start):
    """Step N's hooks ran before checkpoint N was written, so a run resumed from it runs none of them again."""
    calls = []
    hooks = HookRegistry()
    for name, schedule in (("baseline", {"at_steps": [0, 4]}), ("every", {"every": 2, "at_end": True})):
        hooks.add(name, lambda ctx, name=name: calls.append(name) or {name: ctx.step}, **schedule)
    trainer = SimpleNamespace(num_train_steps=start, progress=False, distributed_timeout_sec=1.0)
    session = SimpleNamespace(cfg=SimpleNamespace(trainer=trainer), rank=RankInfo(0, 1, 0), step=start, hooks=hooks,
                              tracker=RecordingTracker(), progress=None, last_checkpoint_step=start)
    train_loop(session, StopRequest(grace_sec=1.0))  # num_train_steps == start: no update, only the hooks before it
    assert calls == (["baseline"] if start == 0 else [])
    assert session.tracker.rows == ([(0, {"baseline": 0})] if start == 0 else [])


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_lr_warms_up_linearly_then_decays_to_min(schedule):
    cfg = OptimizerConfig(warmup_steps=4, lr_schedule=schedule, min_lr_ratio=0.1)
    values = [lr_multiplier(s, 20, cfg) for s in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0
    assert values[-1] == pytest.approx(1.0 if schedule == "constant" else 0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
