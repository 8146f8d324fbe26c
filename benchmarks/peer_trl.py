"""The TRL peer for bench_train.py: TRL's SimPO (`trl.experimental.cpo.CPOTrainer`, loss_type="simpo",
cpo_alpha=0), run by the interpreter of TRL's own virtual environment.

Reads a JSON job (model directory, preference file, pairs per update, max length, precision, steps), trains, and
prints one JSON line: wall and CPU seconds and non-padding / computed tokens of each measured update (after the
warm-up ones). Only the updates are timed (TrainerCallback on_step_begin -> on_step_end); dataset preparation is not.

    /path/to/trl-venv/bin/python benchmarks/peer_trl.py job.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def conversational(row: dict) -> dict:
    """The UltraFeedback row as TRL's conversational preference layout (prompt turns, then each answer)."""
    return {"prompt": row["chosen"][:-1], "chosen": row["chosen"][-1:], "rejected": row["rejected"][-1:]}


def main() -> None:
    job = json.load(open(sys.argv[1]))
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    torch.set_num_threads(job["threads"])
    rows = [conversational(json.loads(line)) for line in open(job["data_path"])]
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32)
    steps: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.began, self.began_cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            steps[-1].update(sec=time.perf_counter() - self.began, cpu_sec=time.process_time() - self.began_cpu)

    class CountingTrainer(CPOTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            chosen, rejected = inputs["chosen_attention_mask"], inputs["rejected_attention_mask"]
            width = max(chosen.shape[1], rejected.shape[1])  # concatenated_inputs pads both to this
            steps.append({"tokens": int(chosen.sum() + rejected.sum()),
                          "computed": (chosen.shape[0] + rejected.shape[0]) * width})
            return super().training_step(model, inputs, num_items_in_batch)

    with tempfile.TemporaryDirectory() as out:
        config = CPOConfig(
            output_dir=out, loss_type="simpo", cpo_alpha=0.0, beta=job["beta"], simpo_gamma=job["gamma"],
            max_length=job["max_length"], per_device_train_batch_size=job["pairs_per_update"],
            gradient_accumulation_steps=1, learning_rate=1e-4, lr_scheduler_type="constant", warmup_steps=0,
            max_steps=job["warmup_steps"] + job["steps"], bf16=job["precision"] == "bf16", use_cpu=True,
            gradient_checkpointing=False, logging_steps=10_000, save_strategy="no", report_to=[],
            dataloader_num_workers=0, disable_tqdm=True, seed=0)
        trainer = CountingTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, callbacks=[Timer()])
        trainer.train()
    measured = steps[job["warmup_steps"]:]
    print(json.dumps({"steps": measured}), flush=True)


if __name__ == "__main__":
    main()
