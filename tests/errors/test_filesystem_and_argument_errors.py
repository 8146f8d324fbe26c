"""The filesystem (run_dir or another output is a file, or lies under one) and the `sample` and `report`
arguments. (Unwritable directories are not covered: these tests may run as root, for whom nothing is.)"""

from corpus import EVAL_ON, QUICK, Case, category_tests, write

A_FILE = write("a_file", "not a directory\n")
SAMPLE = ["sample", "--model", "{model}", "--max-new-tokens", "2"]


def no_report(env, run, result) -> None:
    assert not (env.tmp / "not_a_run" / "report.html").exists()


CASES = [
    Case("run_dir_is_a_file", ["train", *QUICK, "--trainer.run_dir={tmp}/a_file"], 1,
         ["trainer.run_dir={tmp}/a_file: is a file, expected a directory"], setup=A_FILE),
    Case("run_dir_under_a_file", ["train", *QUICK, "--trainer.run_dir={tmp}/a_file/run"], 1,
         ["trainer.run_dir={tmp}/a_file/run: {tmp}/a_file is a file, so the directory cannot be created"],
         setup=A_FILE),
    Case("run_dir_empty", ["train", *QUICK, "--trainer.run_dir="], 2, ["--trainer.run_dir=: trainer.run_dir"]),
    Case("eval_output_dir_is_a_file", ["train", *QUICK, *EVAL_ON, "--inference_eval.synthetic_prompt_count=2",
                                       "--inference_eval.output_dir={tmp}/a_file"], 1,
         ["inference_eval.output_dir={tmp}/a_file: is a file"], setup=A_FILE),
    Case("export_path_is_a_file", ["train", *QUICK, "--hf_save_path={tmp}/a_file", "--hf_save_steps=1"], 1,
         ["hf_save_path={tmp}/a_file: is a file"], setup=A_FILE),
    Case("sample_out_is_a_file", [*SAMPLE, "--synthetic", "2", "--out", "{tmp}/a_file"], 2, ["'--out'", "is a file"],
         setup=A_FILE),
    Case("sample_out_under_a_file", [*SAMPLE, "--synthetic", "2", "--out", "{tmp}/a_file/out"], 2,
         ["--out={tmp}/a_file/out: {tmp}/a_file is a file"], setup=A_FILE),
    Case("sample_no_prompt_source", [*SAMPLE, "--out", "{run}"], 2,
         ["give exactly one of --prompts FILE or --synthetic N"]),
    Case("sample_two_prompt_sources", [*SAMPLE, "--synthetic", "2", "--prompts", "{tmp}/p.txt", "--out", "{run}"], 2,
         ["give exactly one of --prompts FILE or --synthetic N"], setup=write("p.txt", "a\n")),
    Case("sample_zero_new_tokens", ["sample", "--model", "{model}", "--synthetic", "2", "--max-new-tokens", "0",
                                    "--out", "{run}"], 2, ["'--max-new-tokens'", "0 is not in the range x>=1"]),
    Case("sample_top_p_zero", [*SAMPLE, "--synthetic", "2", "--top-p", "0", "--out", "{run}"], 2, ["'--top-p'"]),
    Case("sample_negative_temperature", [*SAMPLE, "--synthetic", "2", "--temperature", "-1", "--out", "{run}"], 2,
         ["'--temperature'"]),
    Case("sample_zero_synthetic", [*SAMPLE, "--synthetic", "0", "--out", "{run}"], 2, ["'--synthetic'"]),
    Case("sample_bad_dtype", [*SAMPLE, "--synthetic", "2", "--dtype", "fp8", "--out", "{run}"], 2, ["'--dtype'"]),
    Case("sample_missing_out", [*SAMPLE, "--synthetic", "2"], 2, ["Missing option '--out'"]),
    Case("sample_unknown_option", [*SAMPLE, "--synthetic", "2", "--out", "{run}", "--beam", "4"], 2,
         ["No such option '--beam'"]),
    Case("report_not_a_run", ["report", "{tmp}/not_a_run"], 1,
         ["{tmp}/not_a_run: not a simpo-live run directory"], setup=write("not_a_run/notes.txt", "hello\n"),
         after=no_report),
    Case("report_on_a_file", ["report", "{tmp}/a_file"], 2, ["'RUN_DIR'", "is a file"], setup=A_FILE),
    Case("report_missing_directory", ["report", "{tmp}/nowhere"], 2, ["'RUN_DIR'", "does not exist"]),
    Case("unknown_command", ["trian"], 2, ["No such command 'trian'"]),
]

results, test_case = category_tests(CASES)
