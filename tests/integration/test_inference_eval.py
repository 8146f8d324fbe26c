"""The periodic inference eval inside a real (tiny, one-process) training run."""

import gc
import json
import shutil

import pytest
import torch

from run_overrides import quick_run_overrides
from simpo_live.config import load_config
from simpo_live.engine import Engine
from simpo_live.tracking import read_metrics
from simpo_live.training_run import run_training

EVAL = ["--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[2,4]",
        "--inference_eval.eval_before_training=true", "--inference_eval.max_new_tokens=12",
        "--inference_eval.synthetic_prompt_count=6", "--inference_eval.synthetic_prompt_template=reverse: ba be {index}",
        "--inference_eval.temperature=0.8", "--inference_eval.n_samples=2",
        "--inference_eval.scorer=simpo_live.tasks.reverse_words:score"]


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def generation_fields(row):
    return {k: row[k] for k in ("global_prompt_index", "sample_index", "prompt", "generated_text",
                                "generated_token_count", "prompt_token_count", "finish_reason", "seed", "step")}


def run(task_assets, run_dir, extra=()):
    cfg = load_config(overrides=quick_run_overrides(task_assets, run_dir) + EVAL + list(extra))
    assert run_training(cfg) == 0
    return run_dir / "inference_eval"


def test_eval_runs_at_baseline_and_exact_steps(task_assets, tmp_path):
    out = run(task_assets, tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == ["step_000000", "step_000002", "step_000004"]
    for step in (0, 2, 4):
        step_dir = out / f"step_{step:06d}"
        rows = read_rows(step_dir / "host_0000_of_0001.jsonl")
        assert (step_dir / "host_0000_of_0001.done").is_file()
        assert [(r["global_prompt_index"], r["sample_index"]) for r in rows] == [(i, j) for i in range(6) for j in (0, 1)]
        for row in rows:
            assert row["step"] == step and row["process_count"] == 1 and row["finish_reason"] in ("stop", "length")
            assert row["generated_token_count"] == 12 or row["finish_reason"] == "stop"
            assert "config_digest" in row and "score" in row and row["temperature"] == 0.8
        summary = json.loads((step_dir / "summary.json").read_text())
        assert summary["metrics"]["num_samples"] == 12
        assert summary["metrics"]["total_tokens"] == sum(r["generated_token_count"] for r in rows)
    logged = [row for row in read_metrics(tmp_path / "run") if "inference_eval/total_tokens" in row]
    assert [row["step"] for row in logged] == [0, 2, 4]
    assert all("inference_eval/scorer_mean" in row and "inference_eval/loop_rate" in row for row in logged)


def test_generations_come_from_the_current_weights(task_assets, tmp_path):
    out = run(task_assets, tmp_path / "run")
    probes = [json.loads((out / f"step_{s:06d}" / "summary.json").read_text())["probe"] for s in (0, 2, 4)]
    for probe in probes:
        assert probe["num_tokens"] == 8
        assert probe["engine_logprob_sum"] == pytest.approx(probe["trainer_logprob_sum"], abs=1e-3)
    sums = [p["engine_logprob_sum"] for p in probes]
    assert len(set(round(s, 4) for s in sums)) == 3  # training moved the weights between evals


def test_engine_memory_is_released_after_each_eval(task_assets, tmp_path):
    run(task_assets, tmp_path / "run")
    gc.collect()
    assert not [obj for obj in gc.get_objects() if type(obj) is Engine]


def test_subprocess_isolation_writes_the_same_rows(task_assets, tmp_path):
    in_process = run(task_assets, tmp_path / "a")
    isolated = run(task_assets, tmp_path / "b", ["--inference_eval.isolation=subprocess"])
    for step in (0, 2, 4):
        name = f"step_{step:06d}/host_0000_of_0001.jsonl"
        a, b = read_rows(in_process / name), read_rows(isolated / name)
        assert [generation_fields(r) for r in a] == [generation_fields(r) for r in b]
        assert len({r["config_digest"] for r in b}) == 1 and "model_path" not in b[0]


def test_leader_only_on_one_rank_writes_the_same_rows_with_either_isolation(task_assets, tmp_path):
    reference = run(task_assets, tmp_path / "a")
    isolated = run(task_assets, tmp_path / "b", ["--inference_eval.inference_mode=leader_only",
                                                  "--inference_eval.isolation=subprocess"])
    for step in (0, 2, 4):
        name = f"step_{step:06d}/host_0000_of_0001.jsonl"
        assert [generation_fields(r) for r in read_rows(isolated / name)] == \
               [generation_fields(r) for r in read_rows(reference / name)]


def test_resumed_run_regenerates_only_missing_host_files(task_assets, tmp_path):
    out = run(task_assets, tmp_path / "run")
    step_dir = out / "step_000004"
    host_file = step_dir / "host_0000_of_0001.jsonl"
    # Pretend the run died inside the step-4 eval: summary never written, one host file never finished, and so
    # neither the step-4 checkpoint (written after the eval) nor the report.
    (step_dir / "summary.json").unlink()
    kept_mtime = (out / "step_000002" / "host_0000_of_0001.jsonl").stat().st_mtime_ns
    host_file.unlink()
    (step_dir / "host_0000_of_0001.done").unlink()
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step_000004")
    (tmp_path / "run" / "report.html").unlink()
    run(task_assets, tmp_path / "run")  # resumes from the step-2 checkpoint and reruns only the missing shard
    assert host_file.is_file() and (step_dir / "summary.json").is_file()
    assert (out / "step_000002" / "host_0000_of_0001.jsonl").stat().st_mtime_ns == kept_mtime


def test_on_error_warn_keeps_training(task_assets, tmp_path):
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run") + EVAL
                      + ["--inference_eval.scorer=tests_scorers:explode", "--inference_eval.on_error=warn"])
    assert run_training(cfg) == 0
    errors = [json.loads(line) for line in (tmp_path / "run" / "inference_eval" / "errors.jsonl").read_text().splitlines()]
    assert [e["step"] for e in errors] == [0, 2, 4]
    assert "scorer exploded" in errors[0]["errors"]["0"]
    assert max(row["step"] for row in read_metrics(tmp_path / "run")) == 4


def test_on_error_raise_stops_the_run(task_assets, tmp_path):
    from simpo_live.evals.hook import EvalFailedError

    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run") + EVAL
                      + ["--inference_eval.scorer=tests_scorers:explode"])
    with pytest.raises(EvalFailedError, match="scorer exploded"):
        run_training(cfg)


def test_preflight_refuses_an_eval_that_cannot_fit(task_assets, tmp_path):
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run") + EVAL
                      + ["--inference_eval.max_new_tokens=600"])
    assert run_training(cfg) == 1
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not read_metrics(tmp_path / "run")


def test_bf16_engine_copy_leaves_training_weights_alone(task_assets, tmp_path):
    out = run(task_assets, tmp_path / "run", ["--inference_eval.dtype=bfloat16"])
    probe = json.loads((out / "step_000004" / "summary.json").read_text())["probe"]
    assert probe["engine_logprob_sum"] == pytest.approx(probe["trainer_logprob_sum"], abs=0.1)  # both bf16
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "run" / "checkpoints" / "step_000004" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())


def test_stop_token_ids_reach_the_subprocess_engine(task_assets, tmp_path):
    # Every id of the vocabulary stops: each sample ends after its first token, though ignore_eos drops EOS.
    cfg = load_config(overrides=quick_run_overrides(task_assets, tmp_path / "run", steps=2) + EVAL + [
        "--inference_eval.eval_at_steps=[2]", "--inference_eval.eval_before_training=false",
        "--inference_eval.ignore_eos=true", f"--inference_eval.stop_token_ids=[{','.join(map(str, range(320)))}]",
        "--inference_eval.isolation=subprocess", "--inference_eval.scorer=null"])
    assert run_training(cfg) == 0
    rows = read_rows(tmp_path / "run" / "inference_eval" / "step_000002" / "host_0000_of_0001.jsonl")
    assert len(rows) == 12 and {(r["generated_token_count"], r["finish_reason"]) for r in rows} == {(1, "stop")}
