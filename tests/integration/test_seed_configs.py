"""The seed's config files, as the seed writes them (`tests/seed_configs/`), load over the embedded default with no
error and no warning, their prompt source and schedule replacing the preset's, and plan for 1 and 2 ranks.
Training them under one process and two torchrun ranks is `tests/distributed/test_seed_config_runs.py`."""

from pathlib import Path

import pytest

from simpo_live.config.load import resolve_config
from simpo_live.plan.check import run_plan_command

SEED = Path(__file__).resolve().parents[1] / "seed_configs"
M12 = ["m12.yaml", "m12_key_settings.yaml"]


def choices(resolved) -> dict[str, tuple[str, str, tuple]]:
    return {c.group.what: (c.key, c.origin, c.replaced) for c in resolved.choices}


@pytest.mark.parametrize("name", M12)
def test_the_seed_m12_config_loads_as_written(name):
    resolved = resolve_config(SEED / name)
    cfg = resolved.config
    assert cfg.trainer.num_train_steps == 200
    assert cfg.inference_eval.enabled
    assert cfg.inference_eval.schedule_steps(200) == [0, 50, 100, 150, 200]  # the preset's baseline, then the seed's
    assert cfg.inference_eval.inference_mode == "host_data_parallel"
    assert cfg.inference_eval.synthetic_prompt_count == 1024
    assert cfg.inference_eval.heldout_prompt_count is None
    assert cfg.inference_eval.max_new_tokens == 2048
    assert cfg.trainer.run_dir == f"runs/{Path(name).stem}"
    assert resolved.warnings == []
    source = choices(resolved)["prompt source"]
    assert source[0] == "inference_eval.synthetic_prompt_count" and source[1].startswith(f"{SEED / name}:")
    assert source[2] == (("inference_eval.heldout_prompt_count", "preset default.yaml:20"),)
    assert choices(resolved)["eval schedule"][1].startswith(f"{SEED / name}:")


@pytest.mark.parametrize("name, key, value", [
    ("m12_every50.yaml", "eval_every", 50),
    ("prompts.yaml", "prompts", ["reverse: ba ko mi", "reverse: dun lot mes rag"]),
    ("prompts_path.yaml", "prompts_path", "seed_prompts.txt"),
])
def test_the_seeds_other_example_keys_load(name, key, value):
    resolved = resolve_config(SEED / name)
    ie = resolved.config.inference_eval
    assert getattr(ie, key) == value
    assert ie.heldout_prompt_count is None and resolved.warnings == []
    assert ie.schedule_steps(200) == [0, 50, 100, 150, 200]
    if key == "eval_every":
        assert ie.eval_at_steps is None  # the file's schedule replaces the preset's eval_at_steps
        assert choices(resolved)["eval schedule"][2] == (("inference_eval.eval_at_steps", "preset default.yaml:18"),)
    else:
        assert choices(resolved)["prompt source"][0] == f"inference_eval.{key}"


@pytest.mark.parametrize("world_size", [1, 2])
def test_the_seed_m12_config_plans(world_size, capsys):
    cfg = resolve_config(SEED / "m12.yaml").config
    assert run_plan_command(cfg, world_size, "cpu", 64.0) == 0
    out = capsys.readouterr().out
    assert f"({world_size} rank(s)" in out and "KV cache" in out and "fits" in out
