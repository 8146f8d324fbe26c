"""Bad preference files, in each format: missing or unreadable files, encodings, shapes, fields, roles, empty."""

from corpus import QUICK, Case, category_tests, jsonl, write

GOOD = {"prompt": "reverse: ba be", "chosen": "be ba", "rejected": "ba be"}
MESSAGES = {"prompt": "reverse: ba be",
            "chosen": [{"role": "user", "content": "reverse: ba be"}, {"role": "assistant", "content": "be ba"}],
            "rejected": [{"role": "user", "content": "reverse: ba be"}, {"role": "assistant", "content": "ba be"}]}


def train_on(path: str, *extra: str) -> list[str]:
    return ["train", *QUICK, f"--data.train_path={path}", *extra]


def with_row(row) -> str:
    """Three good rows with `row` third: the error must name line 3."""
    return jsonl([GOOD, GOOD, row])


def parquet(relative: str, rows: list[dict]):
    def setup(env, run) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), env.tmp / relative)

    return setup


def saved_dataset_dict(relative: str):
    def setup(env, run) -> None:
        import datasets

        saved = datasets.DatasetDict({"train_prefs": datasets.Dataset.from_list([GOOD] * 4)})
        saved.save_to_disk(str(env.tmp / relative))

    return setup


def row_case(case_id: str, row, names: list[str]) -> Case:
    return Case(case_id, train_on(f"{{tmp}}/{case_id}.jsonl"), 1, [f"{{tmp}}/{case_id}.jsonl:3", *names],
                setup=write(f"{case_id}.jsonl", with_row(row)))


CASES = [
    Case("data_file_not_found", train_on("{tmp}/nope.jsonl"), 1, ["{tmp}/nope.jsonl: file not found"]),
    Case("unknown_extension", train_on("{tmp}/prefs.csv"), 1, ["{tmp}/prefs.csv: unknown data format '.csv'"],
         setup=write("prefs.csv", "prompt,chosen,rejected\n")),
    Case("empty_jsonl", train_on("{tmp}/empty.jsonl"), 1, ["{tmp}/empty.jsonl: no preference rows"],
         setup=write("empty.jsonl", "\n\n")),
    Case("invalid_json_line", train_on("{tmp}/broken.jsonl"), 1, ["{tmp}/broken.jsonl:3: invalid JSON"],
         setup=write("broken.jsonl", jsonl([GOOD, GOOD]) + '{"prompt": "x", \n')),
    Case("jsonl_not_utf8", train_on("{tmp}/latin1.jsonl"), 1, ["{tmp}/latin1.jsonl:2: not UTF-8 text"],
         setup=write("latin1.jsonl", (jsonl([GOOD]) + '{"prompt": "caf\xe9"}\n').encode("latin-1"))),
    row_case("row_is_a_list", ["a", "b"], ["a row must be an object", "got list"]),
    row_case("missing_chosen", {"prompt": "x", "rejected": "y"}, ['missing field "chosen"']),
    row_case("missing_rejected", {"prompt": "x", "chosen": "y"}, ['missing field "rejected"']),
    row_case("missing_prompt", {"chosen": "y", "rejected": "z"}, ['missing field "prompt"']),
    row_case("chosen_is_int", {"prompt": "x", "chosen": 7, "rejected": "z"},
             ['"chosen" must be a string or a list of messages, got int']),
    row_case("chosen_empty_list", {"prompt": "x", "chosen": [], "rejected": "z"}, ['"chosen" is an empty message list']),
    row_case("last_turn_not_assistant", {**MESSAGES, "chosen": [{"role": "user", "content": "reverse: ba be"}]},
             ['the last message of "chosen" must be from the assistant', "got role 'user'"]),
    row_case("unknown_role", {**MESSAGES, "rejected": [{"role": "robot", "content": "ba be"}]},
             ["rejected[0] has role 'robot'; expected one of system, user, assistant"]),
    row_case("message_without_content", {**MESSAGES, "chosen": [{"role": "assistant"}]},
             ['chosen[0] must be a message {{"role": str, "content": str}}']),
    row_case("prompt_is_int", {"prompt": 3, "chosen": "a", "rejected": "b"},
             ['"prompt" must be a string or a list of messages, got int']),
    row_case("prompt_empty_list", {"prompt": [], "chosen": "a", "rejected": "b"}, ['"prompt" is an empty message list']),
    row_case("different_contexts", {**MESSAGES, "rejected": [{"role": "user", "content": "other"},
                                                            {"role": "assistant", "content": "x"}]},
             ['the messages of "rejected" before the answer do not start with the prompt conversation']),
    Case("json_not_a_list", train_on("{tmp}/object.json"), 1, ["{tmp}/object.json: a .json data file must hold a list"],
         setup=write("object.json", '{"rows": []}')),
    Case("json_invalid", train_on("{tmp}/broken.json"), 1, ["{tmp}/broken.json:2: invalid JSON"],
         setup=write("broken.json", '[\n{"prompt": }\n]')),
    Case("json_not_utf8", train_on("{tmp}/latin1.json"), 1, ["{tmp}/latin1.json:1: not UTF-8 text"],
         setup=write("latin1.json", '[{"prompt": "caf\xe9"}]'.encode("latin-1"))),
    Case("json_row_missing_field", train_on("{tmp}/rows.json"), 1, ['{tmp}/rows.json:row 1: missing field "rejected"'],
         setup=write("rows.json", '[{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]')),
    Case("parquet_damaged", train_on("{tmp}/damaged.parquet"), 1, ["{tmp}/damaged.parquet: cannot read as Parquet"],
         setup=write("damaged.parquet", b"PAR1 this is not parquet")),
    Case("parquet_missing_column", train_on("{tmp}/two_columns.parquet"), 1,
         ['{tmp}/two_columns.parquet:row 0: missing field "rejected"'],
         setup=parquet("two_columns.parquet", [{"prompt": "a", "chosen": "b"}])),
    Case("directory_not_a_dataset", train_on("{tmp}/plain_dir"), 1, ["{tmp}/plain_dir: a directory but not a saved"],
         setup=write("plain_dir/readme.txt", "hello")),
    Case("dataset_split_missing", train_on("{tmp}/saved_dict"), 1,
         ["{tmp}/saved_dict: no split 'train' in this DatasetDict (has train_prefs); set data.split"],
         setup=saved_dataset_dict("saved_dict")),
    Case("validation_file_bad", train_on("{data}", "--data.validation_path={tmp}/val.jsonl"), 1,
         ['{tmp}/val.jsonl:1: missing field "chosen"'], setup=write("val.jsonl", '{"prompt": "a", "rejected": "b"}\n')),
    Case("pair_over_length_limits", train_on("{data}", "--data.max_seq_len=8", "--data.max_prompt_len=4"), 1,
         ["{data}:1: pair is too long", "data.max_prompt_len=4", "data.max_seq_len=8", "data.overlong=drop"]),
    Case("every_pair_dropped", train_on("{data}", "--data.max_seq_len=8", "--data.max_prompt_len=4",
                                        "--data.overlong=drop"), 1,
         ["{data}: all", "training pairs are over-long and were dropped (data.max_seq_len=8"]),
]

results, test_case = category_tests(CASES)
