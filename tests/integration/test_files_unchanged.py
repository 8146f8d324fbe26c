"""The files a run writes (eval host files, done markers, scores, on-policy pairs, `simpo-live sample` output) are
byte for byte the files the code wrote before generation rows moved into `simpo_live/rollout/`.

Command line and file reading only, no simpo_live import: each test runs one capture of
`tests/fixtures/jsonl_before_rollout/capture.py` (its commands, in a temporary working directory) and compares what
it wrote with that folder's files, captured at commit 075c462 (see the folder's README.md). Host files, done markers
and scores are compared as raw bytes, so a changed key order, float formatting or separator fails; the one
normalised field is `model_path` in `sample` rows (an absolute path). summary.json, round.json and the on-policy
`*.stats.json` hold wall times: their key lists (in order, at every level) and every value that is not a time or a
memory reading are compared.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jsonl_before_rollout"


def load_capture_module():
    spec = importlib.util.spec_from_file_location("jsonl_before_rollout_capture", FIXTURES / "capture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


capture = load_capture_module()


def differences_after_running(name: str, tmp_path: Path) -> list[str]:
    spec = capture.CAPTURES[name]
    workdir = tmp_path / name
    out = capture.run(spec, workdir)
    return capture.compare(spec, out, workdir)


def explain(name: str, differences: list[str]) -> str:
    return (f"{name}: {len(differences)} difference(s) from the files written before the rollout refactor "
            f"(command: {capture.CAPTURES[name].command()}):\n  " + "\n  ".join(differences[:20]))


@pytest.fixture(scope="module")
def eval_differences(tmp_path_factory):
    """One run of the in-process eval capture serves its two tests."""
    return differences_after_running("eval", tmp_path_factory.mktemp("golden"))


def test_eval_host_files_equal_the_files_written_before_the_rollout_refactor(eval_differences):
    exact = capture.CAPTURES["eval"].exact
    found = [d for d in eval_differences if d.split(":")[0] in exact]
    fail_on_differences("eval", found)


def fail_on_differences(name: str, found: list[str]) -> None:
    if found:
        pytest.fail(explain(name, found), pytrace=False)


def test_eval_summary_has_the_keys_and_values_written_before_the_rollout_refactor(eval_differences):
    by_keys = capture.CAPTURES["eval"].by_keys
    found = [d for d in eval_differences if d.split(":")[0] in by_keys]
    fail_on_differences("eval", found)


def test_onpolicy_round_files_equal_the_files_written_before_the_rollout_refactor(tmp_path):
    fail_on_differences("onpolicy", differences_after_running("onpolicy", tmp_path))


def test_sample_command_files_equal_the_files_written_before_the_rollout_refactor(tmp_path):
    fail_on_differences("sample", differences_after_running("sample", tmp_path))


def test_subprocess_isolated_eval_files_equal_the_files_written_before_the_rollout_refactor(tmp_path):
    fail_on_differences("eval_subprocess", differences_after_running("eval_subprocess", tmp_path))


@pytest.mark.distributed
def test_two_rank_eval_host_files_equal_the_files_written_before_the_rollout_refactor(tmp_path):
    fail_on_differences("eval_two_ranks", differences_after_running("eval_two_ranks", tmp_path))


def test_the_comparison_fails_on_a_changed_key_order_or_float_format(tmp_path):
    """The comparison itself (no run): a fixture row with two keys swapped, or a float written another way, or a
    summary key renamed, is reported."""
    spec = capture.CAPTURES["eval"]
    host = "inference_eval/step_000000/host_0000_of_0001.jsonl"
    original = (FIXTURES / "eval" / host).read_bytes()
    first_line = original.split(b"\n")[0]
    assert b'"score": 0.0, "reward": ' in first_line
    variants = {
        "key order": first_line.replace(b'"step": 0, "global_prompt_index": 0',
                                        b'"global_prompt_index": 0, "step": 0'),
        "float format": first_line.replace(b'"score": 0.0,', b'"score": 0,'),
        "separator": first_line.replace(b'"score": 0.0,', b'"score":0.0,'),
    }
    for what, line in variants.items():
        assert line != first_line, what
        out = tmp_path / what.replace(" ", "_")
        for name in spec.exact + spec.by_keys:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes((FIXTURES / "eval" / name).read_bytes())
        (out / host).write_bytes(original.replace(first_line, line, 1))
        found = capture.compare(spec, out, tmp_path)
        assert [d.split(":")[0] for d in found] == [host], (what, found)
    summary = "inference_eval/step_000000/summary.json"
    text = (FIXTURES / "eval" / summary).read_text()
    (out / host).write_bytes(original)
    (out / summary).write_text(text.replace('"reward_mean"', '"mean_reward"', 1))
    assert any("keys" in d for d in capture.compare(spec, out, tmp_path))
    (out / summary).write_text(text.replace('"generation_time_sec": ', '"generation_time_sec": 1', 1))
    assert capture.compare(spec, out, tmp_path) == []  # a different time is not a difference
