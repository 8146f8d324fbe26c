"""Preference data: read files, tokenize with the chat template, deterministic batches per rank."""
