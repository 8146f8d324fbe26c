"""On-policy SimPO: scheduled rounds in which the model samples answers to training prompts, scores them, and the
best-versus-worst pairs (UltraFeedback layout, per-host JSONL with provenance) become the training pairs."""
