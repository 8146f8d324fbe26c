"""Intra-op thread defaults per rank, and which config changes make a run directory another run's."""

import os

import yaml

from simpo_live.config import load_config
from simpo_live.distributed.env import intra_op_threads
from simpo_live.train.ownership import config_changes, read_saved_config


def test_threads_follow_the_config_then_omp_num_threads_then_cores_per_local_rank(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert intra_op_threads(3) == 3
    assert intra_op_threads(None) == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
    assert intra_op_threads(None) == 1  # never zero
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert intra_op_threads(None) is None  # torch already follows OMP_NUM_THREADS


def test_the_default_preset_pins_no_thread_count():
    assert load_config().trainer.num_threads is None


def test_pacing_keys_may_change_but_the_run_may_not():
    saved = load_config().model_dump(mode="json")
    same_run = load_config(overrides=["--trainer.progress=false", "--trainer.num_threads=1",
                                      "--trainer.run_dir=elsewhere", "--inference_eval.max_seqs=8"])
    assert config_changes(saved, same_run) == {}
    other = load_config(overrides=["--trainer.seed=1", "--optimizer.warmup_steps=3"])
    assert config_changes(saved, other) == {"optimizer.warmup_steps": (10, 3), "trainer.seed": (0, 1)}


def test_a_run_saved_before_the_validate_every_rename_resumes_as_the_same_run(tmp_path):
    saved = load_config(overrides=["--trainer.validate_every=7"]).model_dump(mode="json")
    saved["trainer"]["eval_every"] = saved["trainer"].pop("validate_every")  # config.yaml as the old name wrote it
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    read = read_saved_config(tmp_path)
    assert read["trainer"]["validate_every"] == 7 and "eval_every" not in read["trainer"]
    assert config_changes(read, load_config(overrides=["--trainer.validate_every=7"])) == {}
    assert config_changes(read, load_config()) == {"trainer.validate_every": (7, 50)}
