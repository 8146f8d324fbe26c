import pytest

from simpo_live.config import ConfigError, load_config
from simpo_live.config.load import PRESETS


def test_dotted_overrides_are_typed():
    cfg = load_config(overrides=["--trainer.num_train_steps=100", "--inference_eval.eval_at_steps=[50,100]",
                                 "--beta=2.5"])
    assert cfg.trainer.num_train_steps == 100
    assert cfg.inference_eval.eval_at_steps == [50, 100]
    assert cfg.beta == 2.5


def test_all_errors_reported_at_once_with_paths_and_nearest_key():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["--trainer.num_train_stepz=5", "--beta=-1", "--inference_eval.eval_at_steps=[1,0]",
                               "--trainer.strategy=zero3"])
    text = str(err.value)
    assert "trainer.num_train_stepz: unknown key (did you mean trainer.num_train_steps?)" in text
    assert "beta: Input should be greater than 0 (got -1)" in text
    assert "inference_eval.eval_at_steps[1]: Input should be greater than or equal to 1 (got 0)" in text
    assert "trainer.strategy: Input should be 'ddp' or 'fsdp' (got 'zero3')" in text
    assert len(err.value.problems) == 4


def test_config_file_merges_over_default(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("trainer:\n  num_train_steps: 7\n")
    cfg = load_config(path, ["--trainer.seed=3"])
    assert cfg.trainer.num_train_steps == 7 and cfg.trainer.seed == 3
    assert cfg.trainer.train_batch_size == load_config().trainer.train_batch_size


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml: the top level must be a mapping"):
        load_config(bad)


@pytest.mark.parametrize("preset", sorted(p.name for p in PRESETS.glob("*.yaml")))
def test_every_shipped_preset_parses(preset):
    load_config(PRESETS / preset)


def test_m12_reference_workload_decodes():
    cfg = load_config(PRESETS / "m12.yaml")
    assert cfg.trainer.num_train_steps == 200
    assert cfg.inference_eval.eval_at_steps == [50, 100, 150, 200]
    assert cfg.inference_eval.inference_mode == "host_data_parallel"
    assert cfg.inference_eval.synthetic_prompt_count == 1024
    assert cfg.inference_eval.max_new_tokens == 2048
