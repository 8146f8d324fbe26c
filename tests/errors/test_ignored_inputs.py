"""Inputs a run would ignore: scheduled work past the last update, empty schedules, two one-of members in one layer,
and keys that have no effect in the mode chosen. Each is an error (exit 2, nothing written) or, where the run is
still what was asked, one warning line; both name the key and the layer (file line or argument) that set it."""

from corpus import QUICK, Case, category_tests, write

SCORER = "simpo_live.tasks.reverse_words:score"
ONPOLICY = ["--onpolicy.enabled=true", f"--onpolicy.scorer={SCORER}"]


def warned_once(text: str):
    """An `after` check: exit 0 and `text` on exactly one `warning:` line of stderr."""

    def check(env, run, result):
        lines = [line for line in result["stderr"].splitlines() if line.startswith("warning:") and text in line]
        assert len(lines) == 1, result["stderr"]

    return check


def quiet(env, run, result):
    assert "warning" not in result["stderr"], result["stderr"]


CASES = [
    # The example: the step-50 eval of a 10-step run used to be dropped without a word.
    Case("eval_step_past_the_run", ["config", "--trainer.num_train_steps=10", "--inference_eval.eval_at_steps=[5,50]"],
         2, ["inference_eval.eval_at_steps: step 50 is past trainer.num_train_steps (10)",
             "inference_eval.eval_at_steps from --inference_eval.eval_at_steps=[5,50]",
             "trainer.num_train_steps from --trainer.num_train_steps=10"]),
    Case("train_refuses_an_eval_past_the_run", ["train", *QUICK, "--inference_eval.enabled=true",
                                                "--inference_eval.eval_at_steps=[1,3]"], 2,
         ["inference_eval.eval_at_steps: step 3 is past trainer.num_train_steps (2)"]),
    Case("eval_step_past_the_run_in_a_file", ["config", "--config", "{tmp}/late_eval.yaml"], 2,
         ["step 300 is past trainer.num_train_steps (200)", "inference_eval.eval_at_steps from {tmp}/late_eval.yaml:4",
          "trainer.num_train_steps from {tmp}/late_eval.yaml:2"],
         setup=write("late_eval.yaml", "trainer:\n  num_train_steps: 200\ninference_eval:\n"
                                       "  eval_at_steps: [100, 300]\n")),
    Case("eval_every_longer_than_the_run", ["config", "--trainer.num_train_steps=10", "--inference_eval.eval_every=20"],
         2, ["inference_eval.eval_every: 20 is more than trainer.num_train_steps (10)",
             "inference_eval.eval_every from --inference_eval.eval_every=20"]),
    Case("empty_eval_schedule", ["config", "--inference_eval.eval_at_steps=[]",
                                 "--inference_eval.eval_before_training=false"], 2,
         ["inference_eval: enabled, but no eval would run: inference_eval.eval_at_steps is empty",
          "inference_eval.enabled from preset default.yaml:", "--inference_eval.eval_at_steps=[]"]),
    Case("every_eval_past_a_shortened_run", ["config", "--trainer.num_train_steps=10",
                                             "--inference_eval.eval_before_training=false"], 2,
         ["inference_eval: enabled, but no eval would run", "inference_eval.eval_at_steps from preset default.yaml:"]),
    Case("round_at_the_last_step", ["config", *ONPOLICY, "--onpolicy.at_steps=[0,10]", "--trainer.num_train_steps=10"],
         2, ["onpolicy.at_steps: step 10 is not before trainer.num_train_steps (10)",
             "onpolicy.at_steps from --onpolicy.at_steps=[0,10]"]),
    Case("empty_round_schedule", ["config", *ONPOLICY, "--onpolicy.at_steps=[]"], 2,
         ["onpolicy: enabled, but no round would run", "onpolicy.at_steps from --onpolicy.at_steps=[]"]),
    Case("export_path_without_steps", ["config", "--hf_save_path={tmp}/hf"], 2,
         ["hf_save_path is set but hf_save_steps is not, so nothing would be exported",
          "hf_save_path from --hf_save_path="]),
    Case("two_eval_schedules_in_one_layer", ["config", "--inference_eval.eval_every=50",
                                             "--inference_eval.eval_at_steps=[100]"], 2,
         ["give at most one eval schedule in one layer", "inference_eval.eval_at_steps from "
          "--inference_eval.eval_at_steps=[100]", "inference_eval.eval_every from --inference_eval.eval_every=50"]),
    Case("two_score_sources_in_one_layer", ["config", *ONPOLICY, "--onpolicy.every=50",
                                            "--onpolicy.reward_model=bundled:tiny-reverse-rm"], 2,
         ["give at most one score source in one layer", f"onpolicy.scorer from --onpolicy.scorer={SCORER}",
          "onpolicy.reward_model from --onpolicy.reward_model=bundled:tiny-reverse-rm"]),
    Case("key_written_dotted_and_nested", ["config", "--config", "{tmp}/twice.yaml"], 2,
         ["{tmp}/twice.yaml:3: trainer.seed: set twice in this file"],
         setup=write("twice.yaml", "trainer:\n  seed: 1\ntrainer.seed: 2\n")),
    # Warnings: the run is what the user (or a later layer) asked for; one line names what goes unused.
    Case("preset_evals_past_a_shortened_run", ["config", "--trainer.num_train_steps=10"], 0,
         ["warning: inference_eval.eval_at_steps: steps 50, 100, 150, 200 are past trainer.num_train_steps (10), "
          "so those evals will not run", "inference_eval.eval_at_steps from preset default.yaml:",
          "trainer.num_train_steps from --trainer.num_train_steps=10"],
         after=warned_once("inference_eval.eval_at_steps")),
    Case("file_evals_past_a_run_an_override_shortened", ["config", "--config", "{tmp}/late_eval.yaml",
                                                         "--trainer.num_train_steps=150"], 0,
         ["warning: inference_eval.eval_at_steps: step 300 is past trainer.num_train_steps (150)",
          "inference_eval.eval_at_steps from {tmp}/late_eval.yaml:4"]),
    Case("scorer_while_evals_are_off", ["config", "--inference_eval.enabled=false",
                                        "--inference_eval.scorer=tests_scorers:word_count"], 0,
         ["warning: inference_eval.scorer has no effect: evals are off (inference_eval.scorer from",
          "inference_eval.scorer from --inference_eval.scorer=tests_scorers:word_count"],
         after=warned_once("inference_eval.scorer")),
    Case("reward_model_while_evals_are_off", ["config", "--config", "{tmp}/rm_off.yaml"], 0,
         ["warning: inference_eval.reward_model has no effect: evals are off",
          "inference_eval.reward_model from {tmp}/rm_off.yaml:3", "inference_eval.enabled from {tmp}/rm_off.yaml:2"],
         setup=write("rm_off.yaml", "inference_eval:\n  enabled: false\n  reward_model: bundled:tiny-reverse-rm\n")),
    Case("onpolicy_scorer_while_rounds_are_off", ["config", f"--onpolicy.scorer={SCORER}"], 0,
         ["warning: onpolicy.scorer has no effect: on-policy rounds are off"]),
    Case("top_p_under_greedy", ["config", "--inference_eval.top_p=0.9"], 0,
         ["warning: inference_eval.top_p has no effect: temperature 0 is greedy",
          "inference_eval.top_p from --inference_eval.top_p=0.9"]),
    Case("hbm_utilization_beside_max_pages", ["config", "--inference_eval.max_pages=64",
                                              "--inference_eval.hbm_utilization=0.3"], 0,
         ["warning: inference_eval.hbm_utilization has no effect: max_pages sizes the KV cache"]),
    Case("template_without_synthetic_prompts", ["config", "--inference_eval.synthetic_prompt_template=q {{index}}"], 0,
         ["warning: inference_eval.synthetic_prompt_template has no effect: the prompts are not synthetic"]),
    Case("token_budget_without_packing", ["config", "--trainer.packing=false", "--trainer.micro_batch_tokens=4096"], 0,
         ["warning: trainer.micro_batch_tokens has no effect: packing is off"]),
    Case("wandb_project_without_wandb", ["config", "--tracker.wandb_project=mine"], 0,
         ["warning: tracker.wandb_project has no effect: wandb is not among the trackers"]),
    Case("checkpoint_period_longer_than_the_run", ["config", "--trainer.num_train_steps=10",
                                                   "--inference_eval.eval_at_steps=[10]",
                                                   "--trainer.checkpoint_every=50"], 0,
         ["warning: trainer.checkpoint_every (50) is more than trainer.num_train_steps (10): the only checkpoint is "
          "the final one"]),
    Case("train_warns_once_and_runs", ["train", *QUICK, "--trainer.validate_every=100"], 0,
         ["warning: trainer.validate_every (100) is more than trainer.num_train_steps (2)"],
         after=warned_once("trainer.validate_every"), run_must_not_exist=False),
    # What the preset sets and the run does not use is not the user's input: no warning.
    Case("preset_scorer_unused_is_quiet", ["config", "--inference_eval.enabled=false"], 0, [], after=quiet),
    Case("preset_periods_over_a_short_run_are_quiet", ["config", "--trainer.num_train_steps=20",
                                                       "--inference_eval.eval_at_steps=[20]"], 0, [], after=quiet),
]

results, test_case = category_tests(CASES)
