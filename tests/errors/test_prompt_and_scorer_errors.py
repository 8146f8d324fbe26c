"""Bad prompt files (text and JSONL, for the eval and for `sample`), requests that cannot fit (refused before any
work, naming the prompt by index and line), and bad `module:function` scorer references."""

from corpus import EVAL_ON, QUICK, Case, category_tests, jsonl, write

LONG_PROMPT = "reverse: " + " ".join(["ba"] * 600)  # over the task model's 512-token context


def eval_with_prompts(path: str, *extra: str) -> list[str]:
    return ["train", *QUICK, *EVAL_ON, f"--inference_eval.prompts_path={path}", *extra]


def sample_prompts(path: str, *extra: str) -> list[str]:
    return ["sample", "--model", "{model}", "--prompts", path, "--max-new-tokens", "4", "--out", "{run}", *extra]


def eval_with_scorer(spec: str) -> list[str]:
    return ["train", *QUICK, *EVAL_ON, "--inference_eval.prompts=[ba be]", f"--inference_eval.scorer={spec}"]


PROMPTS_JSONL = jsonl([{"prompt": "reverse: ba"}, {"text": "reverse: be"}, {"prompt": "x"}])

CASES = [
    Case("prompts_file_missing", eval_with_prompts("{tmp}/nope.txt"), 1, ["{tmp}/nope.txt: prompts file not found"]),
    Case("jsonl_row_without_prompt", eval_with_prompts("{tmp}/no_prompt.jsonl"), 1,
         ["{tmp}/no_prompt.jsonl:2: missing field \"prompt\" (has 'text')"],
         setup=write("no_prompt.jsonl", PROMPTS_JSONL)),
    Case("jsonl_row_invalid", eval_with_prompts("{tmp}/invalid.jsonl"), 1, ["{tmp}/invalid.jsonl:2: not valid JSON"],
         setup=write("invalid.jsonl", '{"prompt": "a"}\n{"prompt": \n')),
    Case("jsonl_prompt_not_a_string", eval_with_prompts("{tmp}/int_prompt.jsonl"), 1,
         ['{tmp}/int_prompt.jsonl:1: "prompt" must be a string, got int'],
         setup=write("int_prompt.jsonl", '{"prompt": 5}\n')),
    Case("jsonl_row_not_an_object", eval_with_prompts("{tmp}/list_row.jsonl"), 1,
         ["{tmp}/list_row.jsonl:2: expected an object with a \"prompt\" string, got list"],
         setup=write("list_row.jsonl", '{"prompt": "a"}\n["a"]\n')),
    Case("jsonl_prompt_empty", eval_with_prompts("{tmp}/blank.jsonl"), 1, ['{tmp}/blank.jsonl:1: "prompt" is empty'],
         setup=write("blank.jsonl", '{"prompt": "  "}\n')),
    Case("prompts_not_utf8", eval_with_prompts("{tmp}/latin1.txt"), 1, ["{tmp}/latin1.txt:2: not UTF-8 text"],
         setup=write("latin1.txt", "reverse: ba\ncaf\xe9\n".encode("latin-1"))),
    Case("prompts_file_empty", eval_with_prompts("{tmp}/empty.txt"), 1,
         ["{tmp}/empty.txt: no prompts in the file (inference_eval.prompts_path)"], setup=write("empty.txt", "\n \n")),
    Case("prompts_path_is_a_directory", eval_with_prompts("{tmp}"), 1, ["{tmp}: is a directory, expected a prompts file"]),
    Case("eval_prompt_over_context", eval_with_prompts("{tmp}/long.txt"), 1,
         ["prompt 1 ({tmp}/long.txt:2) has", "exceeds the model's context of 512", "inference_eval.max_new_tokens"],
         setup=write("long.txt", f"reverse: ba\n{LONG_PROMPT}\n")),
    Case("eval_request_over_cache", eval_with_prompts("{tmp}/short.txt", "--inference_eval.max_pages=1",
                                                        "--inference_eval.max_new_tokens=40"), 1,
         ["prompt 0 ({tmp}/short.txt:1) needs", "pages of 16 tokens but the KV cache would hold 1",
          "raise inference_eval.max_pages"], setup=write("short.txt", "reverse: ba be bi bo bu\n")),
    Case("inline_prompt_over_context", ["train", *QUICK, *EVAL_ON, f"--inference_eval.prompts=[a, '{LONG_PROMPT}']"],
         1, ["prompt 1 (inference_eval.prompts[1]) has"]),
    Case("sample_jsonl_row_without_prompt", sample_prompts("{tmp}/no_prompt.jsonl"), 2,
         ['--prompts {tmp}/no_prompt.jsonl:2: missing field "prompt"']),
    Case("sample_prompt_over_context", sample_prompts("{tmp}/long.txt"), 2,
         ["prompt 1 ({tmp}/long.txt:2) has", "exceeds the model's context of 512: lower --max-new-tokens"]),
    Case("sample_request_over_pages", sample_prompts("{tmp}/short.txt", "--max-pages", "1", "--page-size", "4"), 2,
         ["prompt 0 ({tmp}/short.txt:1) needs", "pages of 4 tokens but the KV cache would hold 1",
          "raise --max-pages"]),
    Case("sample_prompts_file_empty", sample_prompts("{tmp}/empty.txt"), 2, ["--prompts {tmp}/empty.txt: no prompts"]),
    Case("scorer_module_missing", eval_with_scorer("no_such_module_xyz:score"), 1,
         ["inference_eval.scorer: cannot import module 'no_such_module_xyz'"]),
    Case("scorer_function_missing", eval_with_scorer("simpo_live.tasks.reverse_words:no_such_function"), 1,
         ["inference_eval.scorer: module 'simpo_live.tasks.reverse_words' has no function 'no_such_function'"]),
    Case("scorer_not_callable", eval_with_scorer("simpo_live.tasks.reverse_words:PREFIX"), 1,
         ["has no function 'PREFIX' (PREFIX is a str)"]),
    Case("scorer_module_fails_to_import", eval_with_scorer("broken_scorers:score"), 1,
         ["cannot import module 'broken_scorers' (ModuleNotFoundError: No module named 'not_installed_xyz')"],
         setup=write("broken_scorers.py", "import not_installed_xyz\n\ndef score(row):\n    return 0.0\n")),
    Case("scorer_module_has_a_syntax_error", eval_with_scorer("syntax_scorers:score"), 1,
         ["cannot import module 'syntax_scorers' (SyntaxError"], setup=write("syntax_scorers.py", "def score(row)\n")),
]

results, test_case = category_tests(CASES)
