import pytest

from simpo_live.config.schema import OptimizerConfig
from simpo_live.train.hooks import HookRegistry, Schedule
from simpo_live.train.optim import lr_multiplier


def test_every_fires_on_multiples_and_at_end_only_when_asked():
    every = Schedule(every=3)
    assert [s for s in range(0, 8) if every.fires_at(s, 7)] == [3, 6]
    assert [s for s in range(0, 8) if Schedule(every=3, at_end=True).fires_at(s, 7)] == [3, 6, 7]


def test_exact_steps_fire_exactly_including_zero_and_last():
    schedule = Schedule(at_steps=frozenset({0, 2, 5}))
    assert [s for s in range(0, 6) if schedule.fires_at(s, 5)] == [0, 2, 5]


def test_resumed_run_only_reruns_idempotent_hooks():
    calls = []
    hooks = HookRegistry()
    hooks.add("plain", lambda ctx: calls.append("plain"), at_steps=[4])
    hooks.add("eval", lambda ctx: calls.append("eval"), at_steps=[4], rerun_on_resume=True)
    list(hooks.run(None, 4, 10, resumed=True))
    assert calls == ["eval"]
    list(hooks.run(None, 4, 10))
    assert calls == ["eval", "plain", "eval"]


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_lr_warms_up_linearly_then_decays_to_min(schedule):
    cfg = OptimizerConfig(warmup_steps=4, lr_schedule=schedule, min_lr_ratio=0.1)
    values = [lr_multiplier(s, 20, cfg) for s in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0
    assert values[-1] == pytest.approx(1.0 if schedule == "constant" else 0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
