"""Config overrides shared by tests that run the trainer (importable: `tests/` is on the pytest path)."""


def quick_run_overrides(task_assets, run_dir, steps: int = 4) -> list[str]:
    """Overrides for a few-second CPU run on the task assets."""
    model_dir, data_path = task_assets
    return [f"--model.path={model_dir}", f"--data.train_path={data_path}", f"--trainer.run_dir={run_dir}",
            f"--trainer.num_train_steps={steps}", "--trainer.train_batch_size=8", "--trainer.micro_batch_size=4",
            "--trainer.checkpoint_every=2", "--trainer.validate_every=2", "--trainer.progress=false",
            "--trainer.num_threads=1", "--optimizer.warmup_steps=1", "--optimizer.learning_rate=1e-3",
            # The default preset's demo eval (baseline, held-out prompts, task scorer) is off; tests that
            # enable evals choose their own keys on top of the schema defaults restored here.
            "--inference_eval.enabled=false", "--inference_eval.eval_before_training=false",
            "--inference_eval.scorer=null", "--inference_eval.reward_model=null",
            "--inference_eval.heldout_prompt_count=null",
            "--inference_eval.eval_at_steps=null"]
