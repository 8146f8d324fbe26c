"""Preference data: read files, tokenize with the chat template, deterministic batches per rank."""

from simpo_live.data.batches import PairBatch, collate_packed, collate_pairs, global_batch_indices, rank_slice
from simpo_live.data.errors import DataError
from simpo_live.data.packing import MicroBatching, rank_micro_batches
from simpo_live.data.records import PreferenceRecord, read_preference_records
from simpo_live.data.splits import PreferenceData, load_preference_data
from simpo_live.data.tokenize import TokenizedPair, tokenize_records
from simpo_live.data.tokenizer import load_tokenizer

__all__ = [
    "DataError",
    "MicroBatching",
    "PairBatch",
    "PreferenceData",
    "PreferenceRecord",
    "TokenizedPair",
    "collate_packed",
    "collate_pairs",
    "global_batch_indices",
    "load_preference_data",
    "load_tokenizer",
    "rank_micro_batches",
    "rank_slice",
    "read_preference_records",
    "tokenize_records",
]
