"""Training throughput: simpo-live against TRL's SimPO on the same random tiny Llama and preference file.

TRL (`trl.experimental.cpo.CPOTrainer`, loss_type="simpo", cpo_alpha=0) runs in its own virtual environment
(`python -m venv V && V/bin/pip install torch==2.13.0 trl==1.16.0`) through benchmarks/peer_trl.py; simpo-live
runs packed (the default) and padded (the reference layout). Every run is a fresh subprocess on 1 thread; runs
alternate, in reversed order every other round; 8 pairs per update, max length 512, fp32 and bf16 autocast. Only
updates are timed, after warm-up updates. One JSON line per run and a summary per precision: non-padding
tokens/s and its ratio to TRL (by wall time, and by CPU time, which a busy machine disturbs less), each side's
padding share, and simpo-live's MFU against this CPU's 1-thread GEMM peak measured in the same run.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/bench_train.py --trl-python /work/venv-trl/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BUNDLED = HERE.parent / "src" / "simpo_live" / "assets" / "tiny-reverse"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
CHILD_FLAG = "--child"
NUM_ROWS, MAX_LENGTH, PAIRS_PER_UPDATE, BETA, GAMMA_BETA_RATIO = 2048, 512, 8, 2.0, 0.5


def write_checkpoint(directory: Path) -> None:
    """The bundled tiny model's architecture with random weights (N(0, 0.02)), and its word-level tokenizer."""
    from simpo_live.model.checkpoint import read_model_args, save_model
    from simpo_live.model.llama import LlamaModel

    torch.manual_seed(0)
    model = LlamaModel(read_model_args(BUNDLED))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    save_model(model, directory, dtype=torch.float32)
    for name in TOKENIZER_FILES:
        shutil.copy(BUNDLED / name, directory / name)


def write_preferences(path: Path) -> None:
    """NUM_ROWS UltraFeedback-layout rows of random words (one token each): prompts of 20-80 words, answers of
    120-320, so a micro-batch padded to its longest row is about a quarter padding, like UltraFeedback."""
    vocab = json.loads((BUNDLED / "tokenizer.json").read_text())["model"]["vocab"]
    words = [w for w, i in vocab.items() if i >= 8]  # past the special and instruction tokens
    rng = random.Random(0)
    say = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
    with open(path, "w") as f:
        for _ in range(NUM_ROWS):
            prompt = say(rng.randint(20, 80))
            turn = [{"role": "user", "content": prompt}]
            f.write(json.dumps({"prompt": prompt,
                                "chosen": turn + [{"role": "assistant", "content": say(rng.randint(120, 320))}],
                                "rejected": turn + [{"role": "assistant", "content": say(rng.randint(120, 320))}]})
                    + "\n")


def gemm_peak_flops(dtype: torch.dtype, size: int = 1024, repeats: int = 10) -> float:
    """This CPU's matmul FLOP/s on this thread count: the MFU denominator (the best of `repeats`)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def run_ours(job: dict) -> dict:
    """simpo-live's own session and train_step: what `simpo-live train` runs, without hooks."""
    from simpo_live.config import load_config
    from simpo_live.train.loop import micro_batches_for_step
    from simpo_live.train.session import build_session
    from simpo_live.train.step import train_step

    overrides = [
        f"--model.path={job['model_dir']}", f"--data.train_path={job['data_path']}",
        f"--trainer.run_dir={job['run_dir']}", "--data.validation_split_fraction=0",
        f"--data.max_seq_len={MAX_LENGTH}", "--data.max_prompt_len=256", f"--beta={BETA}",
        f"--gamma_beta_ratio={GAMMA_BETA_RATIO}", f"--trainer.train_batch_size={PAIRS_PER_UPDATE}",
        f"--trainer.micro_batch_size={PAIRS_PER_UPDATE}", f"--trainer.precision={job['precision']}",
        f"--trainer.packing={str(job['packing']).lower()}", f"--trainer.num_threads={job['threads']}",
        f"--trainer.peak_flops={job['peak_flops']}", "--trainer.progress=false",
        "--optimizer.learning_rate=1e-4", "--optimizer.warmup_steps=0", "--optimizer.lr_schedule=constant",
        "--inference_eval.enabled=false", "--inference_eval.eval_before_training=false",
        "--inference_eval.scorer=null", "--inference_eval.reward_model=null",
        "--inference_eval.heldout_prompt_count=null", "--inference_eval.eval_at_steps=null"]
    session = build_session(load_config(overrides=overrides))
    steps = []
    for step in range(job["warmup_steps"] + job["steps"]):
        began = time.process_time()
        m = train_step(session.model, session.optimizer, session.scheduler, micro_batches_for_step(session, step),
                       session.step_settings)
        steps.append({"sec": m.step_time_sec, "cpu_sec": time.process_time() - began, "tokens": m.num_tokens,
                      "computed": round(m.num_tokens / (1 - m.padding_share)), "mfu": m.mfu})
    return {"steps": steps[job["warmup_steps"]:]}


def launch(command: list[str], job: dict, work: Path) -> dict:
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run(command + [str(job_path)], capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarise(side: str, precision: str, result: dict) -> dict:
    steps = result["steps"]
    seconds, tokens = sum(s["sec"] for s in steps), sum(s["tokens"] for s in steps)
    cpu_seconds = sum(s["cpu_sec"] for s in steps)
    row = {"side": side, "precision": precision, "updates": len(steps), "sec": round(seconds, 2),
           "non_padding_tokens": tokens, "tok_s": round(tokens / seconds, 1),
           "tok_per_cpu_s": round(tokens / cpu_seconds, 1),
           "padding_share": round(1 - tokens / sum(s["computed"] for s in steps), 3)}
    if steps[0].get("mfu") is not None:
        row["mfu"] = round(sum(s["mfu"] * s["sec"] for s in steps) / seconds, 3)
    return row


def main() -> None:
    if sys.argv[1:2] == [CHILD_FLAG]:  # a simpo-live run in its own process: bench_train.py --child JOB
        print(json.dumps(run_ours(json.loads(Path(sys.argv[2]).read_text()))), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-python", required=True, help="the python of a venv with torch==2.13.0 trl==1.16.0")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6, help="measured updates per run")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_checkpoint(work / "model")
        write_preferences(work / "prefs.jsonl")
        base = {"model_dir": str(work / "model"), "data_path": str(work / "prefs.jsonl"), "threads": args.threads,
                "steps": args.steps, "warmup_steps": args.warmup_steps, "pairs_per_update": PAIRS_PER_UPDATE,
                "max_length": MAX_LENGTH, "beta": BETA, "gamma": BETA * GAMMA_BETA_RATIO}
        ours = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG]
        trl = [args.trl_python, str(HERE / "peer_trl.py")]
        for precision in args.precisions.split(","):
            peak = gemm_peak_flops(torch.bfloat16 if precision == "bf16" else torch.float32)
            runs: dict[str, list[dict]] = {"simpo_live_packed": [], "simpo_live_padded": [], "trl": []}
            for round_index in range(args.rounds):
                for side in list(runs)[::(-1) ** round_index]:  # alternate the order from round to round
                    job = {**base, "precision": precision, "packing": side == "simpo_live_packed",
                           "peak_flops": peak, "run_dir": str(work / f"run-{side}-{precision}")}
                    row = summarise(side, precision, launch(trl if side == "trl" else ours, job, work))
                    print(json.dumps({**row, "threads": args.threads}), flush=True)
                    runs[side].append(row)
            tok_s = {side: sum(r["tok_s"] for r in rows) / len(rows) for side, rows in runs.items()}
            cpu_tok_s = {side: sum(r["tok_per_cpu_s"] for r in rows) / len(rows) for side, rows in runs.items()}
            print(json.dumps({
                "summary": precision, "threads": args.threads, "rounds": args.rounds, "steps": args.steps,
                "cpu_gemm_peak_gflops": round(peak / 1e9, 1),
                **{f"{side}_tok_s": round(v, 1) for side, v in tok_s.items()},
                "ratio_packed_vs_trl": round(tok_s["simpo_live_packed"] / tok_s["trl"], 2),
                "ratio_padded_vs_trl": round(tok_s["simpo_live_padded"] / tok_s["trl"], 2),
                "ratio_packed_vs_trl_cpu_time": round(cpu_tok_s["simpo_live_packed"] / cpu_tok_s["trl"], 2),
                "ratio_packed_vs_padded": round(tok_s["simpo_live_packed"] / tok_s["simpo_live_padded"], 2),
                **{f"{side}_padding_share": rows[-1]["padding_share"] for side, rows in runs.items()},
                "simpo_live_packed_mfu": runs["simpo_live_packed"][-1].get("mfu")}), flush=True)


if __name__ == "__main__":
    main()
