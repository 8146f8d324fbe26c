"""Run directories: damaged checkpoints (the newest readable one is used and the skipped one named, or the run
stops naming them), a checkpoint of another model, another run's config (refused with the differing keys and the
two ways out, nothing touched), a finished run (exit 0, nothing touched), an opted-in change (recorded)."""

import json
import shutil
from pathlib import Path

from corpus import QUICK, Case, category_tests

from simpo_live.config.schema import BUNDLED_MODEL

RUN = [a for a in QUICK if not a.startswith("--trainer.num_train_steps=")] + ["--trainer.num_train_steps=4"]
SNAPSHOTS: dict[Path, dict] = {}


def make_base_run(env) -> Path:
    """A finished 4-step run (checkpoints at 2 and 4), trained once and copied for every case."""
    base = env.tmp / "base_run"
    if not (base / "report.html").is_file():
        from simpo_live.config import load_config
        from simpo_live.training_run import run_training

        overrides = [a.format(model=env.model, data=env.data, run=base) for a in RUN]
        assert run_training(load_config(overrides=overrides)) == 0
    return base


def snapshot(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(run.rglob("*"))}


def copy_of_base(*edits):
    """Setup: this case's run directory is a copy of the base run, then edited; its state is remembered."""

    def setup(env, run: Path) -> None:
        shutil.copytree(make_base_run(env), run)
        for edit in edits:
            edit(run)
        SNAPSHOTS[run] = snapshot(run)

    return setup


def truncate(relative: str, keep: int = 1000):
    def edit(run: Path) -> None:
        (run / relative).write_bytes((run / relative).read_bytes()[:keep])

    return edit


def remove(relative: str):
    return lambda run: (run / relative).unlink()


def untouched(env, run, result) -> None:
    assert snapshot(run) == SNAPSHOTS[run], "the run directory was modified"


def resumed_to_step_4(env, run, result) -> None:
    from simpo_live.train.checkpoint import list_checkpoints

    assert list_checkpoints(run)[-1][0] == 4 and (run / "report.html").is_file()


def change_recorded(env, run, result) -> None:
    record = json.loads((run / "config_changes.jsonl").read_text().splitlines()[-1])
    assert record["resumed_at_step"] == 4
    assert record["changes"]["trainer.num_train_steps"] == {"was": 4, "now": 6}


def case(case_id: str, extra: list[str], code: int, names: list[str], *edits, after=None) -> Case:
    return Case(case_id, ["train", *RUN, *extra], code, names, setup=copy_of_base(*edits), after=after,
                run_must_not_exist=False)


STATE_4, WEIGHTS_4 = "checkpoints/step_000004/trainer_state.pt", "checkpoints/step_000004/model.safetensors"

CASES = [
    case("latest_state_truncated", [], 0,
         [f"warning: skipping checkpoint step_000004: {{run}}/{STATE_4}: cannot be read",
          "resuming from the older checkpoint {run}/checkpoints/step_000002"],
         truncate(STATE_4), remove("report.html"), after=resumed_to_step_4),
    case("latest_weights_truncated", [], 0,
         [f"warning: skipping checkpoint step_000004: {{run}}/{WEIGHTS_4}: not a readable safetensors file",
          "resuming from the older checkpoint {run}/checkpoints/step_000002"],
         truncate(WEIGHTS_4, 100_000), remove("report.html"), after=resumed_to_step_4),
    case("every_checkpoint_damaged", [], 1,
         ["{run}/checkpoints: no checkpoint can be read", "step_000002", "step_000004"],
         truncate(STATE_4), truncate("checkpoints/step_000002/trainer_state.pt"), remove("report.html"),
         after=untouched),
    case("checkpoint_of_another_model", [f"--model.path={BUNDLED_MODEL}", "--trainer.allow_config_change=true"], 1,
         ["{run}/checkpoints/step_000004: the checkpoint belongs to another model (vocab_size", "hidden_size 64 (run's "
          "model: 256)", "use a new trainer.run_dir"], remove("report.html"),
         after=untouched),
    case("other_seed", ["--trainer.seed=5"], 1,
         ["{run}: this run directory belongs to a run with another config", "trainer.seed: 0 in the run, 5 now",
          "use a new trainer.run_dir", "trainer.allow_config_change=true"], after=untouched),
    case("other_loss_and_data", ["--beta=3", "--data.max_seq_len=100"], 1,
         ["beta: 2.0 in the run, 3.0 now", "data.max_seq_len: 128 in the run, 100 now"], after=untouched),
    case("extended_schedule", ["--trainer.num_train_steps=6"], 1, ["trainer.num_train_steps: 4 in the run, 6 now"],
         after=untouched),
    case("finished_run", [], 0, ["{run}: this run already finished (step 4 of 4); nothing to do"], after=untouched),
    case("finished_run_other_pacing", ["--trainer.progress=true", "--trainer.distributed_timeout_sec=30"], 0,
         ["this run already finished"], after=untouched),
    case("saved_config_damaged", [], 1, ["{run}/config.yaml: the saved config of this run directory cannot be read"],
         lambda run: (run / "config.yaml").write_text("trainer: {run_dir: [\n"), after=untouched),
    case("extended_with_opt_in", ["--trainer.num_train_steps=6", "--trainer.allow_config_change=true"], 0,
         ["resuming from {run}/checkpoints/step_000004 (step 4)"], after=change_recorded),
]

results, test_case = category_tests(CASES)
