"""One-of groups across layers: a member set in a later layer replaces the inherited one, two in one layer are an
error naming both, and the choice (with the layer that made it) shows in `--help` and `simpo-live config`."""

import pytest
import yaml

from simpo_live.config import ConfigError, load_config
from simpo_live.config.help import annotated_config_yaml, config_options_help
from simpo_live.config.load import resolve_config
from simpo_live.config.one_of import ONE_OF

SCORER = "simpo_live.tasks.reverse_words:score"


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def choice(resolved, what: str):
    return next(c for c in resolved.choices if c.group.what == what)


def test_a_file_prompt_source_replaces_the_presets(tmp_path):
    path = write(tmp_path, "inference_eval:\n  synthetic_prompt_count: 8\n")
    resolved = resolve_config(path)
    assert resolved.config.inference_eval.synthetic_prompt_count == 8
    assert resolved.config.inference_eval.heldout_prompt_count is None
    made = choice(resolved, "prompt source")
    assert (made.key, made.origin) == ("inference_eval.synthetic_prompt_count", f"{path}:2")
    assert made.replaced == (("inference_eval.heldout_prompt_count", "preset default.yaml:20"),)


def test_an_override_prompt_source_replaces_the_files(tmp_path):
    path = write(tmp_path, "inference_eval:\n  prompts_path: prompts.txt\n")
    resolved = resolve_config(path, ["--inference_eval.prompts=[a,b]"])
    assert resolved.config.inference_eval.prompts == ["a", "b"]
    assert resolved.config.inference_eval.prompts_path is None
    assert choice(resolved, "prompt source").replaced == (  # each layer's, in layer order
        ("inference_eval.heldout_prompt_count", "preset default.yaml:20"), ("inference_eval.prompts_path", f"{path}:2"))


def test_the_same_member_again_is_a_plain_override(tmp_path):
    resolved = resolve_config(overrides=["--inference_eval.heldout_prompt_count=8"])
    made = choice(resolved, "prompt source")
    assert made.origin == "--inference_eval.heldout_prompt_count=8" and made.replaced == ()


def test_a_later_null_leaves_the_group_empty(tmp_path):
    resolved = resolve_config(overrides=["--inference_eval.heldout_prompt_count=null"])
    assert resolved.config.inference_eval.heldout_prompt_count is None
    assert "prompt source" not in {c.group.what for c in resolved.choices}


def test_an_eval_every_replaces_inherited_eval_steps():
    cfg = load_config(overrides=["--inference_eval.eval_every=50"])
    assert cfg.inference_eval.eval_at_steps is None
    assert cfg.inference_eval.schedule_steps(cfg.trainer.num_train_steps) == [0, 50, 100, 150, 200]


def test_an_on_policy_reward_model_replaces_the_files_scorer(tmp_path):
    path = write(tmp_path, f"onpolicy:\n  enabled: true\n  every: 50\n  scorer: {SCORER}\n")
    cfg = load_config(path, ["--onpolicy.reward_model=bundled:tiny-reverse-rm"])
    assert (cfg.onpolicy.scorer, cfg.onpolicy.reward_model) == (None, "bundled:tiny-reverse-rm")


def test_on_policy_at_steps_replace_the_files_every(tmp_path):
    path = write(tmp_path, f"onpolicy:\n  enabled: true\n  every: 50\n  scorer: {SCORER}\n")
    cfg = load_config(path, ["--onpolicy.at_steps=[0,100]"])
    assert (cfg.onpolicy.every, cfg.onpolicy.at_steps) == (None, [0, 100])


# Per group: what else the run needs (a separate layer), then two members given together in one layer.
SAME_LAYER = {
    "prompt source": ([], "inference_eval.prompts_path", "p.txt", "inference_eval.synthetic_prompt_count", "4"),
    "eval schedule": ([], "inference_eval.eval_at_steps", "[100]", "inference_eval.eval_every", "50"),
    "score source": (["--onpolicy.enabled=true", "--onpolicy.every=50"],
                     "onpolicy.scorer", SCORER, "onpolicy.reward_model", "bundled:tiny-reverse-rm"),
    "round schedule": (["--onpolicy.enabled=true", f"--onpolicy.scorer={SCORER}"],
                       "onpolicy.at_steps", "[0]", "onpolicy.every", "50"),
}


def test_every_group_has_a_same_layer_case():
    assert set(SAME_LAYER) == {group.what for group in ONE_OF}


@pytest.mark.parametrize("what", sorted(SAME_LAYER))
def test_two_members_in_one_override_layer_are_an_error_naming_both(what):
    base, key_a, value_a, key_b, value_b = SAME_LAYER[what]
    with pytest.raises(ConfigError) as error:
        load_config(overrides=[*base, f"--{key_a}={value_a}", f"--{key_b}={value_b}"])
    assert len(error.value.problems) == 1  # the schema does not report the same conflict again
    text = error.value.problems[0]
    assert f"give at most one {what} in one layer" in text
    assert f"{key_a} from --{key_a}={value_a}" in text and f"{key_b} from --{key_b}={value_b}" in text


@pytest.mark.parametrize("what", sorted(SAME_LAYER))
def test_two_members_in_one_file_are_an_error_naming_both_lines(tmp_path, what):
    base, key_a, value_a, key_b, value_b = SAME_LAYER[what]
    path = write(tmp_path, f"{key_a}: {value_a}\n{key_b}: {value_b}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, base)
    text = "\n".join(error.value.problems)
    assert f"give at most one {what} in one layer" in text
    assert f"{key_a} from {path}:1" in text and f"{key_b} from {path}:2" in text


def test_config_and_help_show_which_layer_chose(tmp_path):
    path = write(tmp_path, "inference_eval.synthetic_prompt_count: 1024\n")
    text = annotated_config_yaml(resolve_config(path))
    assert (f"  # synthetic_prompt_count: the prompt source, from {path}:1 (replaces "
            "inference_eval.heldout_prompt_count from preset default.yaml:20)\n  synthetic_prompt_count: 1024\n") in text
    assert yaml.safe_load(text)["inference_eval"]["synthetic_prompt_count"] == 1024  # still plain YAML
    help_text = config_options_help(str(path))
    assert (f"--inference_eval.synthetic_prompt_count=VALUE  [1024, from {path}:1; the prompt source, replacing "
            "inference_eval.heldout_prompt_count from preset default.yaml:20]") in help_text
    assert ("--inference_eval.heldout_prompt_count=VALUE  [null, set in preset default.yaml:20, replaced by "
            f"inference_eval.synthetic_prompt_count from {path}:1]") in help_text


def test_dotted_and_nested_keys_in_a_file_mean_the_same(tmp_path):
    dotted = write(tmp_path, "trainer.seed: 3\ninference_eval.max_new_tokens: 9\n", "dotted.yaml")
    nested = write(tmp_path, "trainer:\n  seed: 3\ninference_eval:\n  max_new_tokens: 9\n", "nested.yaml")
    a, b = load_config(dotted), load_config(nested)
    assert a.model_dump() | {"trainer": None} == b.model_dump() | {"trainer": None}  # run_dir is each file's own
    assert (a.trainer.seed, a.inference_eval.max_new_tokens) == (3, 9)
    with pytest.raises(ConfigError, match=r"dotted.yaml:1: trainer\.sed: unknown key"):
        load_config(write(tmp_path, "trainer.sed: 3\n", "dotted.yaml"))
