"""Run many `simpo-live` invocations in one interpreter, exactly as the console script runs one, and record each
one's exit code, stdout and stderr as JSON (the interpreter start and torch import are paid once per category).

An exception that escapes the CLI is printed the way Python prints an uncaught one (a `Traceback`), exit code 1.
Usage: python cli_driver.py CASES.json RESULTS.json, CASES.json being [{"id", "args", "cwd"}].
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def run_one(args: list[str], cwd: str) -> dict:
    from simpo_live.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main.main(args=args, prog_name="simpo-live", standalone_mode=True)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # what the interpreter would do with an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(previous)
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    cases_path, results_path = sys.argv[1:3]
    with open(cases_path) as f:
        cases = json.load(f)
    results = {case["id"]: run_one(case["args"], case["cwd"]) for case in cases}
    with open(results_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
