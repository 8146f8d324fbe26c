"""SimPO training: the loss and log-probs, the optimizer and schedule, one update, the loop with its scheduled
hooks (validation, export, checkpoints), run-directory ownership, preemption, and `simpo-live train` itself
(`run.py`). The inference eval plugs in as a hook from `simpo_live.evals`."""
