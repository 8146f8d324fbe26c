"""`simpo-live sample` under real torchrun (2 ranks, gloo/CPU) writes the same rows as one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simpo_live.rollout.host_files import read_host_files

SRC = str(Path(__file__).resolve().parents[2] / "src")
PROMPTS = ["hello world", "w1 w2 w3", "sort: w5 w4", "reverse: w9 w8 w7 w6", "hello w11 world"]


def run_command(args, nproc):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    # "--" stops torchrun's own parser: it would read our "--n" as an ambiguous abbreviation of its options.
    launcher = [sys.executable, "-m", "simpo_live"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "simpo_live",
        "--"]
    result = subprocess.run(launcher + ["sample", *args], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.timeout(300)
def test_two_ranks_write_the_same_rows_as_one(hf_model_dir, tmp_path):
    model = hf_model_dir("llama")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    common = ["--model", str(model), "--prompts", str(prompts), "--max-new-tokens", "12", "--temperature", "0.8",
              "--top-k", "40", "--n", "2", "--seed", "3", "--step", "50", "--max-seqs", "3"]
    run_command(common + ["--out", str(tmp_path / "one")], nproc=1)
    run_command(common + ["--out", str(tmp_path / "two")], nproc=2)

    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "host_0000_of_0002.done", "host_0000_of_0002.jsonl", "host_0001_of_0002.done", "host_0001_of_0002.jsonl"]
    one, two = read_host_files(tmp_path / "one", 1), read_host_files(tmp_path / "two", 2)
    assert len(one) == len(PROMPTS) * 2
    # Contiguous slices: rank 0 owns prompts [0, 2), rank 1 owns [2, 5).
    assert [r["process_index"] for r in two] == [0] * 4 + [1] * 6
    assert {r["process_count"] for r in two} == {2} and {r["process_count"] for r in one} == {1}
    per_host = ("process_index", "process_count")
    assert [{k: v for k, v in r.items() if k not in per_host} for r in one] == \
           [{k: v for k, v in r.items() if k not in per_host} for r in two]
    assert len({r["generated_text"] for r in one}) > 1 and {r["step"] for r in one} == {50}


def test_missing_model_or_prompts_is_a_clear_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    base = [sys.executable, "-m", "simpo_live", "sample", "--max-new-tokens", "4", "--out", str(tmp_path / "o")]
    result = subprocess.run(base + ["--model", str(tmp_path / "nope"), "--synthetic", "2"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "nope: directory not found" in result.stderr
    (tmp_path / "m").mkdir()
    result = subprocess.run(base + ["--model", str(tmp_path / "m"), "--prompts", str(tmp_path / "p.txt")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "p.txt: prompts file not found" in result.stderr
