"""SimPO training: the loss and log-probs, the optimizer and schedule, one update, the loop with its scheduled
hooks (validation, export, checkpoints), run-directory ownership and preemption. `simpo-live train` itself is
`simpo_live.training_run`, which plugs the inference eval and the on-policy rounds in as hooks; nothing here imports
`simpo_live.evals`, `simpo_live.onpolicy` or `simpo_live.report` (tests/unit/train/test_imports.py)."""
