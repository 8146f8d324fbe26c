"""From the data config to tokenised train and validation pairs: read, hold out a seeded split, tokenise.

The held-out split is chosen on rows before tokenisation, so it does not move when length limits change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from simpo_live.config.schema import DataConfig
from simpo_live.data.errors import DataError
from simpo_live.data.records import PreferenceRecord, read_preference_records
from simpo_live.data.tokenize import TokenizedPair, tokenize_records
from simpo_live.seeds import labelled_seed


@dataclass
class PreferenceData:
    train: list[TokenizedPair]
    validation: list[TokenizedPair]
    num_dropped: int
    """Over-long pairs dropped (train and validation together) under overlong='drop'."""


def load_preference_data(cfg: DataConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreferenceData:
    """Train and validation pairs: validation from cfg.validation_path, else a seeded hold-out of
    cfg.validation_split_fraction of train_path (at least one row when the fraction is > 0 and there
    are two rows or more)."""
    records = read_preference_records(cfg.train_path, cfg.split)
    if cfg.validation_path:
        train_records = records
        validation_records = read_preference_records(cfg.validation_path, cfg.validation_split or cfg.split)
    else:
        train_records, validation_records = split_records(records, cfg.validation_split_fraction, seed)

    def tokenize(rs: list[PreferenceRecord]) -> tuple[list[TokenizedPair], int]:
        return tokenize_records(rs, tokenizer, cfg.max_seq_len, cfg.max_prompt_len, cfg.overlong)

    train, train_dropped = tokenize(train_records)
    validation, validation_dropped = tokenize(validation_records) if validation_records else ([], 0)
    if not train:
        raise DataError(f"{cfg.train_path}: all {len(train_records)} training pairs are over-long and were dropped "
                        f"(data.max_seq_len={cfg.max_seq_len}, data.max_prompt_len={cfg.max_prompt_len})")
    return PreferenceData(train=train, validation=validation, num_dropped=train_dropped + validation_dropped)


def split_records(records: list[PreferenceRecord], fraction: float,
                  seed: int) -> tuple[list[PreferenceRecord], list[PreferenceRecord]]:
    """(train, validation), each in file order; the held-out rows are a seeded random choice."""
    if fraction <= 0 or len(records) < 2:
        return list(records), []
    num_validation = min(len(records) - 1, max(1, round(len(records) * fraction)))
    generator = torch.Generator().manual_seed(labelled_seed("validation", seed))
    held_out = set(torch.randperm(len(records), generator=generator)[:num_validation].tolist())
    train = [r for i, r in enumerate(records) if i not in held_out]
    validation = [r for i, r in enumerate(records) if i in held_out]
    return train, validation
