"""In-process eval overhead: the eval hook's `total_callback_time_sec` against standalone `simpo-live sample`.

Both generate the same prompts with the same weights and seeds in one script run (so the same rows), one
after the other. Default: the reference eval (1024 synthetic prompts x up to 2048 new tokens) on the bundled
tiny model on CPU. Prints one JSON line. Target: the in-process eval costs at most 5% more.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_eval_overhead.py --threads 1
    python benchmarks/bench_eval_overhead.py --prompts 64 --max-new-tokens 128   # a quick version
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simpo_live.config import load_config
from simpo_live.config.schema import BUNDLED_MODEL
from simpo_live.training_run import run_training

TEMPLATE = "reverse: ba be bi bo {index}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL))
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument("--ignore-eos", action="store_true", help="force every sample to max-new-tokens")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-seqs", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    prompts_file = work / "prompts.txt"
    prompts_file.write_text("".join(TEMPLATE.format(index=i) + "\n" for i in range(args.prompts)))
    common = {"max_new_tokens": args.max_new_tokens, "seed": 0}

    cfg = load_config(overrides=[
        f"--model.path={args.model}", f"--trainer.run_dir={work / 'run'}", "--trainer.num_train_steps=1",
        f"--trainer.num_threads={args.threads}", "--trainer.progress=false",
        "--inference_eval.enabled=true", "--inference_eval.eval_at_steps=[]",
        "--inference_eval.eval_before_training=true", f"--inference_eval.prompts_path={prompts_file}",
        "--inference_eval.heldout_prompt_count=null", "--inference_eval.scorer=null",
        f"--inference_eval.max_new_tokens={args.max_new_tokens}",
        f"--inference_eval.max_seqs={args.max_seqs}", f"--inference_eval.ignore_eos={str(args.ignore_eos).lower()}",
        "--inference_eval.seed=0"])
    if run_training(cfg) != 0:
        sys.exit("training run failed")
    summary = json.loads((work / "run" / "inference_eval" / "step_000000" / "summary.json").read_text())
    in_process_sec = summary["metrics"]["total_callback_time_sec"]

    command = [sys.executable, "-m", "simpo_live", "sample", "--model", args.model, "--prompts", str(prompts_file),
               "--max-new-tokens", str(args.max_new_tokens), "--out", str(work / "sample"), "--seed", "0",
               "--step", "0", "--max-seqs", str(args.max_seqs)]
    if args.ignore_eos:
        command.append("--ignore-eos")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    began = time.perf_counter()
    result = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    standalone_sec = time.perf_counter() - began
    reported = re.search(r"tokens in ([\d.]+)s", result.stderr)
    rows = [json.loads(line) for line in (work / "sample" / "host_0000_of_0001.jsonl").read_text().splitlines()]
    print(json.dumps({
        "bench": "eval_overhead", "prompts": args.prompts, **common, "threads": args.threads,
        "in_process_total_callback_time_sec": round(in_process_sec, 2),
        "in_process_generation_time_sec": round(summary["metrics"]["generation_time_sec"], 2),
        "standalone_sample_wall_sec": round(standalone_sec, 2),
        "standalone_generation_sec": float(reported.group(1)) if reported else None,
        "overhead_ratio": round(in_process_sec / standalone_sec, 3),
        "tokens_in_process": summary["metrics"]["total_tokens"],
        "tokens_standalone": sum(r["generated_token_count"] for r in rows),
    }))


if __name__ == "__main__":
    main()
