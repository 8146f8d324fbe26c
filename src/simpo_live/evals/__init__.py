"""Inference evals: prompt sources, per-sample seeds, shard generation into host files, the sample command."""
