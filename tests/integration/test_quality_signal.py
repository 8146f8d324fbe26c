"""Reward-model scores and win rates inside a real (tiny, one-process) training run."""

import gc
import json
import re
import warnings

import pytest
from transformers import PreTrainedModel

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.tracking import read_metrics
from simpo_live.training_run import run_training

STEPS = (0, 2, 4)


def eval_overrides(reward_model) -> list[str]:
    return ["--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2,4]",
            "--inference_eval.eval_before_training=true", "--inference_eval.max_new_tokens=10",
            "--inference_eval.synthetic_prompt_count=8", "--inference_eval.synthetic_prompt_template=reverse: ba be {index}",
            "--inference_eval.temperature=1.0", "--inference_eval.n_samples=2",
            "--inference_eval.scorer=simpo_live.tasks.reverse_words:score",
            f"--inference_eval.reward_model={reward_model}", "--inference_eval.reward_batch_tokens=64"]


def train(task_assets, reward_model, run_dir, extra=()):
    cfg = load_config(overrides=quick_run_overrides(task_assets, run_dir) + eval_overrides(reward_model) + list(extra))
    return run_training(cfg)


def summary(run_dir, step):
    return json.loads((run_dir / "inference_eval" / f"step_{step:06d}" / "summary.json").read_text())


@pytest.fixture(scope="module")
def scored_run(task_assets, task_reward_model, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("quality") / "run"
    assert train(task_assets, task_reward_model, run_dir) == 0
    return run_dir


def test_rows_carry_rewards_flags_and_the_reward_models_provenance(scored_run, task_reward_model):
    for step in STEPS:
        rows = [json.loads(line) for line in
                (scored_run / "inference_eval" / f"step_{step:06d}" / "host_0000_of_0001.jsonl").read_text().splitlines()]
        assert len(rows) == 16
        for row in rows:
            assert isinstance(row["reward"], float) and row["reward_truncated"] == (row["finish_reason"] == "length")
            assert row["reward_model"] == str(task_reward_model) and len(row["reward_model_config_digest"]) == 12
        table = [json.loads(line) for line in
                 (scored_run / "inference_eval" / f"step_{step:06d}" / "scores.jsonl").read_text().splitlines()]
        assert [(e["global_prompt_index"], e["sample_index"]) for e in table] == [(i, j) for i in range(8) for j in (0, 1)]
        assert [e["score"] for e in table] == [r["reward"] for r in rows]  # win rates use the reward, not the scorer


def test_the_baseline_scores_one_half_and_later_evals_are_compared_with_it(scored_run):
    base = summary(scored_run, 0)
    assert base["metrics"]["win_rate"] == 0.5 and base["metrics"]["lc_win_rate"] == 0.5
    assert base["score_source"] == "reward_model" and "win_rate_vs_previous" not in base["metrics"]
    for step, previous in ((2, 0), (4, 2)):
        metrics = summary(scored_run, step)["metrics"]
        assert summary(scored_run, step)["compared_against"] == {"baseline_step": 0, "previous_step": previous}
        assert metrics["num_comparisons"] == 16 and metrics["wins"] + metrics["ties"] + metrics["losses"] == 16
        assert metrics["win_rate"] == pytest.approx((metrics["wins"] + 0.5 * metrics["ties"]) / 16)
        assert 0 <= metrics["lc_win_rate"] <= 1 and metrics["win_rate_se"] > 0
        assert "win_rate_vs_previous" in metrics and "reward_mean_stopped" in metrics or \
            metrics["frac_rewarded_truncated"] == 1.0
    logged = [row for row in read_metrics(scored_run) if "inference_eval/win_rate" in row]
    assert [row["step"] for row in logged] == list(STEPS)
    assert all("inference_eval/reward_mean" in row and "inference_eval/scoring_time_sec" in row for row in logged)


def test_the_leader_prints_one_line_per_eval(task_assets, task_reward_model, tmp_path, capsys):
    assert train(task_assets, task_reward_model, tmp_path / "run") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval step")]
    assert [line.split(" |")[0] for line in lines] == ["eval step 0", "eval step 2", "eval step 4"]
    assert all("16 samples" in line and "win rate" in line and "median length" in line for line in lines)
    assert "win rate 0.500 ± 0.000" in lines[0]


def test_the_reward_model_is_gone_after_the_run(scored_run):
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance wakes torch's deprecated lazy attributes
        assert not [obj for obj in gc.get_objects() if isinstance(obj, PreTrainedModel)]


def test_a_killed_and_resumed_run_gives_the_same_win_rates(task_assets, task_reward_model, scored_run, tmp_path):
    import shutil

    crashed = tmp_path / "run"
    shutil.copytree(scored_run, crashed)
    # Killed during the step-4 eval: its rows half written, no score table, no summary, and so neither the step-4
    # checkpoint (written after the eval) nor the report; the rerun resumes from the step-2 checkpoint.
    step_dir = crashed / "inference_eval" / "step_000004"
    for name in ("summary.json", "scores.jsonl", "host_0000_of_0001.done"):
        (step_dir / name).unlink()
    shutil.rmtree(crashed / "checkpoints" / "step_000004")
    (crashed / "report.html").unlink()
    kept = [row for row in read_metrics(crashed) if row["step"] < 4 or "train/loss" in row]
    (crashed / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in kept))
    assert train(task_assets, task_reward_model, crashed) == 0
    assert summary(crashed, 4)["metrics"]["win_rate"] == summary(scored_run, 4)["metrics"]["win_rate"]
    for key in ("lc_win_rate", "lc_win_rate_se", "win_rate_se", "win_rate_vs_previous", "reward_mean"):
        assert summary(crashed, 4)["metrics"][key] == summary(scored_run, 4)["metrics"][key]


def test_preflight_counts_the_reward_model(task_assets, task_reward_model, tmp_path, capsys):
    assert train(task_assets, task_reward_model, tmp_path / "run", ["--inference_eval.reward_batch_tokens=1000000000000"]) == 1
    out, err = capsys.readouterr()
    # The memory plan before step 1 counts the reward model and refuses the run, naming the reward model's knobs.
    assert re.search(r"reward model\s+eval\s+\d", out)
    assert "the reward model alone needs" in err and "inference_eval.reward_batch_tokens" in err
