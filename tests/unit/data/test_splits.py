"""Train/validation: a seeded, deterministic hold-out or a separate file; over-long rows counted."""

from __future__ import annotations

from simpo_live.config.schema import DataConfig
from simpo_live.data import load_preference_data
from simpo_live.data.records import PreferenceRecord
from simpo_live.data.splits import split_records


def rows(n: int) -> list[dict]:
    return [{"prompt": f"w{i}", "chosen": f"w{i} w{i}", "rejected": "hello"} for i in range(n)]


def records(n: int) -> list[PreferenceRecord]:
    return [PreferenceRecord([{"role": "user", "content": f"w{i}"}], "a", "b", f"f:{i}") for i in range(n)]


def test_split_is_deterministic_disjoint_and_in_file_order():
    train, validation = split_records(records(50), 0.2, seed=1)
    again_train, again_validation = split_records(records(50), 0.2, seed=1)
    assert [r.source for r in validation] == [r.source for r in again_validation]
    assert len(validation) == 10 and len(train) == 40
    assert {r.source for r in train}.isdisjoint(r.source for r in validation)
    assert [r.source for r in train] == sorted((r.source for r in train), key=lambda s: int(s[2:]))
    _, other = split_records(records(50), 0.2, seed=2)
    assert [r.source for r in other] != [r.source for r in validation]


def test_split_sizes_at_the_edges():
    assert [len(part) for part in split_records(records(5), 0.01, seed=0)] == [4, 1]  # at least one row
    assert [len(part) for part in split_records(records(2), 0.9, seed=0)] == [1, 1]  # at least one train row
    assert [len(part) for part in split_records(records(1), 0.5, seed=0)] == [1, 0]
    assert [len(part) for part in split_records(records(5), 0.0, seed=0)] == [5, 0]


def test_load_preference_data_with_hold_out(tmp_path, write_jsonl, word_tokenizer):
    path = write_jsonl(rows(20))
    cfg = DataConfig(train_path=str(path), validation_split_fraction=0.25, max_seq_len=64, max_prompt_len=32)
    data = load_preference_data(cfg, word_tokenizer, seed=0)
    assert (len(data.train), len(data.validation), data.num_dropped) == (15, 5, 0)
    again = load_preference_data(cfg, word_tokenizer, seed=0)
    assert [p.source for p in again.validation] == [p.source for p in data.validation]


def test_load_preference_data_with_validation_file_and_drops(tmp_path, write_jsonl, word_tokenizer):
    train = rows(6) + [{"prompt": "w1", "chosen": "w1 " * 50, "rejected": "w2"}]
    cfg = DataConfig(train_path=str(write_jsonl(train, "train.jsonl")),
                     validation_path=str(write_jsonl(rows(3), "val.jsonl")),
                     max_seq_len=32, max_prompt_len=16, overlong="drop")
    data = load_preference_data(cfg, word_tokenizer, seed=0)
    assert (len(data.train), len(data.validation), data.num_dropped) == (6, 3, 1)
    assert data.validation[0].source.endswith("val.jsonl:1")


def test_validation_split_of_one_dataset_dict(tmp_path, word_tokenizer):
    """UltraFeedback's layout: train_prefs and test_prefs in one saved DatasetDict."""
    import datasets

    parts = {"train_prefs": rows(8), "test_prefs": rows(3)}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(tmp_path / "uf")
    cfg = DataConfig(train_path=str(tmp_path / "uf"), validation_path=str(tmp_path / "uf"), split="train_prefs",
                     validation_split="test_prefs", max_seq_len=64, max_prompt_len=32)
    data = load_preference_data(cfg, word_tokenizer, seed=0)
    assert (len(data.train), len(data.validation)) == (8, 3)
    assert data.validation[0].source.endswith("[test_prefs]:row 0")
