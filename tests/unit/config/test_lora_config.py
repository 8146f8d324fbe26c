"""The `lora` section: off by default, validated at load, and a clear one-line error when peft is missing."""

import importlib.util
import subprocess
import sys

import pytest

from run_overrides import quick_run_overrides
from simpo_live.config import ConfigError, load_config


def test_lora_is_off_by_default_and_rank_turns_it_on():
    assert not load_config().lora.enabled
    cfg = load_config(overrides=["--lora.rank=8"])
    assert cfg.lora.enabled and cfg.lora.rank == 8 and cfg.lora.alpha == 16.0
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_bad_lora_values_name_their_keys():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["--lora.rank=0", "--lora.dropout=1.5", "--lora.target_modules=[lm_head]"])
    text = str(err.value)
    assert "lora.rank: Input should be greater than or equal to 1 (got 0)" in text
    assert "lora.dropout: Input should be less than 1 (got 1.5)" in text
    assert "lora.target_modules[0]: Input should be 'q_proj'" in text and "(got 'lm_head')" in text


def test_lora_without_peft_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    load_config()  # LoRA off: peft is not needed
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["--lora.rank=8"])
    assert err.value.problems == ["lora.rank is set but the peft library is not installed: pip install "
                                  "'simpo-live[lora]' (lora.rank from --lora.rank=8)"]


def test_training_without_lora_never_imports_peft(task_assets, tmp_path):
    """The GPU image has no peft: a run with lora off must not need it."""
    script = ("import sys; from simpo_live.config import load_config; "
              "from simpo_live.training_run import run_training; "
              f"assert run_training(load_config(overrides={quick_run_overrides(task_assets, tmp_path / 'run', 1)!r})) "
              "== 0; assert 'peft' not in sys.modules, 'peft was imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_lora_preset_is_the_default_run_with_rank_8_adapters_and_a_10x_learning_rate():
    from simpo_live.config.load import PRESETS

    default, lora = load_config().model_dump(), load_config(PRESETS / "lora.yaml").model_dump()
    assert {k for k in default if default[k] != lora[k]} == {"lora", "optimizer", "trainer"}
    assert lora["lora"]["rank"] == 8 and lora["optimizer"]["learning_rate"] == 10 * default["optimizer"]["learning_rate"]
    assert {k for k in default["optimizer"] if default["optimizer"][k] != lora["optimizer"][k]} == {"learning_rate"}
    assert {k for k in default["trainer"] if default["trainer"][k] != lora["trainer"][k]} == {"run_dir"}
