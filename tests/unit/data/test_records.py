"""Reading every file format, both answer forms, and the error texts for bad rows."""

from __future__ import annotations

import json

import pytest

from simpo_live.data import DataError, PreferenceRecord, read_preference_records


def conversation(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


EXPECTED = [
    ([{"role": "user", "content": "w1 w2"}], "w2 w1", "w1 w2"),
    ([{"role": "user", "content": "w3 w4 w5"}], "w5 w4 w3", "w5 w3"),
    ([{"role": "user", "content": "hello"}], "world", "hello"),
]


def contents(records: list[PreferenceRecord]):
    return [(r.prompt_messages, r.chosen, r.rejected) for r in records]


def test_jsonl_rows_and_line_sources(write_jsonl, rows):
    path = write_jsonl(rows)
    # A blank line is skipped but still counted, so sources are the editor's line numbers.
    path.write_text(path.read_text().replace("\n", "\n\n", 1))
    records = read_preference_records(str(path))
    assert contents(records) == EXPECTED
    assert [r.source for r in records] == [f"{path}:1", f"{path}:3", f"{path}:4"]


@pytest.mark.parametrize("wrap", [False, True], ids=["list", "data-key"])
def test_json_list_or_data_key(tmp_path, rows, wrap):
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps({"data": rows} if wrap else rows))
    records = read_preference_records(path)
    assert contents(records) == EXPECTED
    assert records[2].source == f"{path}:row 2"


def test_parquet(tmp_path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet needs one type per column, so write the message-list rows only.
    table_rows = [rows[0], rows[2]]
    path = tmp_path / "prefs.parquet"
    pq.write_table(pa.Table.from_pylist(table_rows), path)
    records = read_preference_records(path)
    assert contents(records) == [EXPECTED[0], EXPECTED[2]]
    assert records[1].source == f"{path}:row 1"


def test_saved_dataset_and_dataset_dict(tmp_path, rows):
    import datasets

    string_rows = [{"prompt": "w1", "chosen": "w2", "rejected": "w3"},
                   {"prompt": "w4", "chosen": "w5", "rejected": "w6"}]
    datasets.Dataset.from_list(string_rows).save_to_disk(str(tmp_path / "ds"))
    records = read_preference_records(tmp_path / "ds")
    assert [(r.chosen, r.rejected) for r in records] == [("w2", "w3"), ("w5", "w6")]
    assert records[1].source == f"{tmp_path / 'ds'}:row 1"

    message_rows = [rows[0], rows[2]]
    splits = {"train_prefs": message_rows, "test_prefs": message_rows[:1]}
    dataset_dict = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    dataset_dict.save_to_disk(str(tmp_path / "dd"))
    records = read_preference_records(tmp_path / "dd", split="test_prefs")
    assert contents(records) == [EXPECTED[0]]
    assert records[0].source == f"{tmp_path / 'dd'}[test_prefs]:row 0"
    with pytest.raises(DataError, match=r"no split 'train' in this DatasetDict \(has train_prefs, test_prefs\)"):
        read_preference_records(tmp_path / "dd")


def test_multi_turn_context_and_message_list_prompt(write_jsonl):
    context = [{"role": "user", "content": "w1"}, {"role": "assistant", "content": "w2"},
               {"role": "user", "content": "w3"}]
    row = {"prompt": "w1", "chosen": context + [{"role": "assistant", "content": "w4"}],
           "rejected": context + [{"role": "assistant", "content": "w5"}]}
    trl_row = {"prompt": context, "chosen": [{"role": "assistant", "content": "w4"}], "rejected": "w5"}
    records = read_preference_records(write_jsonl([row, trl_row]))
    assert [r.prompt_messages for r in records] == [context, context]
    assert [(r.chosen, r.rejected) for r in records] == [("w4", "w5"), ("w4", "w5")]


def test_system_messages_may_precede_the_prompt(write_jsonl):
    system = {"role": "system", "content": "w0"}
    row = {"prompt": "w1", "chosen": [system, *conversation("w1", "w2")],
           "rejected": [system, *conversation("w1", "w3")]}
    (record,) = read_preference_records(write_jsonl([row]))
    assert record.prompt_messages == [system, {"role": "user", "content": "w1"}]


def test_extra_message_keys_are_dropped(write_jsonl):
    row = {"prompt": "w1", "chosen": [{"role": "user", "content": "w1", "name": "x"},
                                      {"role": "assistant", "content": "w2"}], "rejected": "w3"}
    (record,) = read_preference_records(write_jsonl([row]))
    assert record.prompt_messages == [{"role": "user", "content": "w1"}]


def bad(row_change: dict, drop: tuple = ()) -> dict:
    row = {"prompt": "w1 w2", "chosen": conversation("w1 w2", "w2 w1"), "rejected": conversation("w1 w2", "w1 w2")}
    row.update(row_change)
    for key in drop:
        del row[key]
    return row


@pytest.mark.parametrize("row, message", [
    (bad({"chosen": 5}), '"chosen" must be a string or a list of messages, got int'),
    (bad({}, drop=("rejected",)), 'missing field "rejected"'),
    (bad({"chosen": "w2 w1"}, drop=("prompt",)), 'missing field "prompt"'),
    (bad({"rejected": conversation("w1 w2", "w1")[:1]}),
     'the last message of "rejected" must be from the assistant, got role \'user\''),
    (bad({"chosen": []}), '"chosen" is an empty message list'),
    (bad({"chosen": [{"role": "user"}, {"role": "assistant", "content": "w1"}]}), "chosen[0] must be a message"),
    (bad({"prompt": 3}), '"prompt" must be a string or a list of messages, got int'),
    (bad({"chosen": conversation("w9", "w2 w1")}), "do not start with the prompt conversation"),
    (bad({"prompt": "w1 w2", "chosen": conversation("w1 w2", "w2"),
          "rejected": [{"role": "system", "content": "x"}, *conversation("w1 w2", "w2")]}),
     '"chosen" and "rejected" have different prompt messages'),
    ([1, 2], "a row must be an object"),
], ids=["chosen-int", "missing-rejected", "missing-prompt", "last-not-assistant", "empty-list", "bad-message",
        "prompt-int", "context-mismatch", "context-differs", "not-an-object"])
def test_bad_row_names_file_line_and_field(write_jsonl, row, message):
    path = write_jsonl([bad({}), bad({}), row])
    with pytest.raises(DataError) as info:
        read_preference_records(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: ")
    assert message in text


def test_chosen_and_rejected_with_different_contexts(write_jsonl):
    row = {"chosen": conversation("w1", "w2"), "rejected": conversation("w3", "w2")}
    with pytest.raises(DataError, match=r":1: \"chosen\" and \"rejected\" have different prompt messages"):
        read_preference_records(write_jsonl([row]))


def test_exact_error_text_for_a_wrong_type(write_jsonl):
    path = write_jsonl([bad({"chosen": 17})])
    with pytest.raises(DataError) as info:
        read_preference_records(path)
    assert str(info.value) == f'{path}:1: "chosen" must be a string or a list of messages, got int'


def test_invalid_json_line(write_jsonl, tmp_path):
    path = write_jsonl([bad({})])
    path.write_text(path.read_text() + '{"prompt": "w1", \n')
    with pytest.raises(DataError, match=rf"^{path}:2: invalid JSON"):
        read_preference_records(path)


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", "", "no preference rows"),
    ("blank.jsonl", "\n\n", "no preference rows"),
    ("empty.json", "[]", "no preference rows"),
    ("prefs.csv", "a,b\n", "unknown data format '.csv'"),
    ("object.json", '{"rows": []}', "must hold a list of rows"),
])
def test_file_level_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_preference_records(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nope.jsonl'}: file not found"):
        read_preference_records(tmp_path / "nope.jsonl")


def test_directory_that_is_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a saved `datasets`"):
        read_preference_records(tmp_path)
