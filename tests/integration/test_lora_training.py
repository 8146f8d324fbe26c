"""LoRA training end to end on one process: checkpoints hold only the adapters, in the files peft loads onto the
transformers base; a resumed run is bitwise the uninterrupted one; the eval generates from the merged weights, so its
rows equal those of `simpo-live sample` on `simpo-live export --merged` (greedy, fp32, CPU); and the refusals."""

import json
import shutil

import pytest
import torch
import transformers
from click.testing import CliRunner
from safetensors.torch import load_file

from run_overrides import quick_run_overrides
from simpo_live import training_run
from simpo_live.cli import main
from simpo_live.config import load_config
from simpo_live.rollout.sample import run_sample_command
from simpo_live.model.adapter_files import load_adapters, read_adapter_config
from simpo_live.model.checkpoint import load_model
from simpo_live.model.lora import add_adapters, adapter_shapes, set_adapters
from simpo_live.tracking import read_metrics
from simpo_live.train.checkpoint import list_checkpoints
from simpo_live.training_run import run_training

STEPS = 6
PROMPTS = [f"reverse: {words}" for words in ("ba be bi", "bo bu", "be ba bo bi", "bu bi")]
LORA = ["--lora.rank=4", "--lora.alpha=8", "--optimizer.learning_rate=1e-2"]
EVAL = ["--inference_eval.enabled=true", f"--inference_eval.eval_at_steps=[{STEPS}]",
        "--inference_eval.max_new_tokens=8", f"--inference_eval.prompts={json.dumps(PROMPTS)}"]
ADAPTER_FILES = {"adapter_model.safetensors", "adapter_config.json", "trainer_state.pt"}


def overrides(task_assets, run_dir, extra=()):
    return quick_run_overrides(task_assets, run_dir, steps=STEPS) + LORA + EVAL + list(extra)


@pytest.fixture(scope="module")
def lora_run(task_assets, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    assert run_training(load_config(overrides=overrides(task_assets, run_dir))) == 0
    return run_dir


def final_checkpoint(run_dir):
    return run_dir / "checkpoints" / f"step_{STEPS:06d}"


def eval_rows(run_dir):
    path = run_dir / "inference_eval" / f"step_{STEPS:06d}" / "host_0000_of_0001.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def ours_with_adapters(model_dir, checkpoint):
    model = load_model(model_dir)
    config = read_adapter_config(checkpoint)
    add_adapters(model, config)
    set_adapters(model, load_adapters(checkpoint, list(adapter_shapes(model.args, config))))
    return model.eval()


def test_checkpoints_hold_only_fp32_adapters_and_their_optimizer_state(lora_run, task_assets):
    checkpoint = final_checkpoint(lora_run)
    assert ADAPTER_FILES <= {p.name for p in checkpoint.iterdir()} and not (checkpoint / "model.safetensors").exists()
    tensors = load_file(checkpoint / "adapter_model.safetensors")
    assert all(k.startswith("base_model.model.model.layers.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
               for k in tensors)
    assert len(tensors) == 2 * 7 * 2 and all(t.dtype == torch.float32 for t in tensors.values())
    assert any(k.endswith("lora_B.weight") and t.abs().max() > 0 for k, t in tensors.items())  # it trained
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["peft_type"]) == (4, 8.0, "LORA")
    assert config["base_model_name_or_path"] == str(task_assets[0].resolve())
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    assert len(state["optimizer"]["state"]) == len(tensors)  # AdamW moments of the adapters only


def test_peft_loads_the_adapters_onto_the_transformers_base(lora_run, task_assets):
    import peft

    checkpoint = final_checkpoint(lora_run)
    base = transformers.AutoModelForCausalLM.from_pretrained(task_assets[0], dtype=torch.float32)
    theirs = peft.PeftModel.from_pretrained(base, checkpoint).eval()
    ours = ours_with_adapters(task_assets[0], checkpoint)
    ids = torch.tensor([[2, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids), rtol=1e-5, atol=1e-5)


def test_resumed_lora_run_equals_uninterrupted_run(lora_run, task_assets, tmp_path, monkeypatch):
    class Crash(Exception):
        pass

    def crash(session):
        raise Crash()

    resumed = tmp_path / "resumed"
    original = training_run.register_inference_eval
    monkeypatch.setattr(training_run, "register_inference_eval", lambda s: s.hooks.add("crash", crash, at_steps=[5]))
    with pytest.raises(Crash):
        run_training(load_config(overrides=overrides(task_assets, resumed)))
    assert [step for step, _ in list_checkpoints(resumed)] == [2, 4]
    monkeypatch.setattr(training_run, "register_inference_eval", original)
    assert run_training(load_config(overrides=overrides(task_assets, resumed))) == 0

    def curve(run_dir):
        return [{k: v for k, v in row.items() if k.startswith(("train/", "val/")) and not k.endswith("_sec")}
                for row in read_metrics(run_dir)]

    assert curve(resumed) == curve(lora_run)
    straight, again = (load_file(final_checkpoint(d) / "adapter_model.safetensors") for d in (lora_run, resumed))
    assert straight.keys() == again.keys() and all(torch.equal(straight[k], again[k]) for k in straight)
    assert [r["generated_text"] for r in eval_rows(resumed)] == [r["generated_text"] for r in eval_rows(lora_run)]


def test_merged_export_loads_in_transformers_and_samples_the_runs_eval_rows(lora_run, task_assets, tmp_path):
    out = tmp_path / "merged"
    result = CliRunner().invoke(main, ["export", str(lora_run), "--merged", str(out)])
    assert result.exit_code == 0, result.output
    exported = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ours = ours_with_adapters(task_assets[0], final_checkpoint(lora_run))
    ids = torch.tensor([[2, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, ours(ids), rtol=1e-4, atol=1e-4)
        assert (exported(ids).logits - load_model(task_assets[0])(ids)).abs().max() > 1e-2  # the adapters count
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in PROMPTS))
    assert run_sample_command(str(out), str(prompts), None, 8, str(tmp_path / "sampled"), step=STEPS) == 0
    sampled = [json.loads(line) for line in (tmp_path / "sampled" / "host_0000_of_0001.jsonl").read_text().splitlines()]
    fields = ("global_prompt_index", "generated_text", "generated_token_count", "finish_reason")
    assert [{k: r[k] for k in fields} for r in sampled] == [{k: r[k] for k in fields} for r in eval_rows(lora_run)]


def test_export_and_sample_refuse_what_they_cannot_use(lora_run, tmp_path):
    runner = CliRunner()
    empty_run = tmp_path / "empty"
    (empty_run / "checkpoints").mkdir(parents=True)
    full_run = tmp_path / "full" / "checkpoints" / "step_000002"
    full_run.mkdir(parents=True)
    (full_run / "trainer_state.pt").write_bytes(b"")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    cases = [(["export", str(empty_run), "--merged", str(tmp_path / "a")], 1, "no checkpoint to export yet"),
             (["export", str(tmp_path / "full"), "--merged", str(tmp_path / "b")], 1, "not a LoRA run"),
             (["export", str(lora_run), "--merged", str(busy)], 2, "exists and is not an empty directory"),
             (["sample", "--model", str(final_checkpoint(lora_run)), "--synthetic", "1", "--max-new-tokens", "2",
               "--out", str(tmp_path / "c")], 2, "holds LoRA adapters, not a model: write the merged model with")]
    for args, code, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == code and message in result.output and "Traceback" not in result.output, args
    assert (busy / "keep.txt").read_text() == "mine"


def test_a_full_fine_tuning_run_does_not_resume_lora_adapters(lora_run, task_assets, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(lora_run / "checkpoints", run_dir / "checkpoints")
    cfg = load_config(overrides=quick_run_overrides(task_assets, run_dir, steps=STEPS))
    assert run_training(cfg) == 1
    assert "holds LoRA adapters but this run trains every weight (lora.rank is null)" in capsys.readouterr().err
