"""The GPU suite: every GPU check in one run, one JSON line per check (about 8 minutes on one H200).

    python benchmarks/gpu_suite.py --out /tmp/suite                                   # one H200, Llama-3.2-1B shape
    python benchmarks/gpu_suite.py --out /tmp/suite_cpu --device cpu --size tiny      # the CPU dry run CI runs

Checks (`--checks` picks some, in this order):
- kernel: the Triton decode attention against SDPA on this device (what every engine checks before using it).
- default: the embedded default run on the device, end to end (wall seconds, each eval's seconds).
- onpolicy_bf16: the on-policy preset with bf16 weights (packed through varlen attention), end to end.
- train_1b: gpu_train_check.py (FSDP2 bf16 training, the seed's reference eval of 1,024 x 2,048 forced tokens, the
  HBM bound, the plan beside the CUDA peak).
- decode: engine decode at 1,024 sequences of the 1B shape, Triton kernel against the masked SDPA view.
- engine_vs_hf: W2 and W3 (bench_generate.py) against `transformers` generate, HF capped at its first batch and
  --hf-new-tokens tokens (its rate at a shorter context, which flatters HF).
- parity: fp32 greedy tokens, CUDA graphs against eager buckets, Triton against SDPA decode, engine against HF.
A failing check prints its traceback and a line with its error; the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

import bench_generate as bench
import gpu_train_check
from simpo_live.config.load import PRESETS as PRESETS_DIR
from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams
from simpo_live.engine import decode_graph
from simpo_live.engine.kv_cache import decode_kernel_problem
from simpo_live.model.args import ModelArgs

CHECKS = ["kernel", "default", "onpolicy_bf16", "train_1b", "decode", "engine_vs_hf", "parity"]
# Per size: train run overrides that keep the CPU dry run short, workloads (prompts, new tokens), model sizes.
TINY_RUN = ["--trainer.num_train_steps=4", "--inference_eval.eval_at_steps=[2,4]",
            "--inference_eval.heldout_prompt_count=8", "--trainer.validate_every=2", "--trainer.checkpoint_every=4"]
SIZES = {
    "1b": dict(run=[], onpolicy=[], workloads={"W2": (256, 512), "W3": (1024, 256)}, engine_model="0.5b",
               decode=(1024, 256), train=dict(size="1b", steps=6, pair_tokens=2048, micro_batch=4,
                                               eval_prompts=1024, eval_new_tokens=2048)),
    "tiny": dict(run=TINY_RUN, onpolicy=["--onpolicy.every=2", "--onpolicy.prompts_per_round=8"],
                 workloads={"W2": (8, 8), "W3": (16, 4)}, engine_model="tiny", decode=(16, 8),
                 train=dict(size="tiny", steps=2, pair_tokens=128, micro_batch=4, eval_prompts=8, eval_new_tokens=8)),
}


def train_run(out: Path, name: str, overrides: list[str], device: str, timeout_sec: float) -> dict:
    """`simpo-live train` in a fresh process: wall seconds, and each eval's seconds from metrics.jsonl. A run past
    `timeout_sec` is stopped (TimeoutExpired is the check's error), so one slow run cannot eat the device time."""
    run_dir = out / name
    command = [sys.executable, "-m", "simpo_live", "train", f"--trainer.run_dir={run_dir}",
               f"--trainer.device={device}", "--trainer.progress=false", *overrides]
    start = time.perf_counter()
    subprocess.run(command, check=True, timeout=timeout_sec)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: round(r["inference_eval/total_callback_time_sec"], 2) for r in rows
             if "inference_eval/total_callback_time_sec" in r}
    rates = [r["train/tokens_per_sec"] for r in rows if "train/tokens_per_sec" in r]
    return {"wall_sec": round(wall, 1), "eval_sec_by_step": evals, "train_steps": len(rates),
            "median_train_tokens_per_sec": sorted(rates)[len(rates) // 2] if rates else None,
            "padding_share_last": next((r["train/padding_share"] for r in reversed(rows)
                                        if "train/padding_share" in r), None)}


def check_kernel(args, size) -> dict:
    shape = gpu_train_check.SIZES[size["train"]["size"]]
    heads, kv_heads, hidden = shape[4], shape[5], shape[1]
    results = {}
    for dtype in (torch.bfloat16, torch.float32):
        results[str(dtype).removeprefix("torch.")] = (
            "cpu: the kernel runs on CUDA only" if args.device == "cpu" else
            decode_kernel_problem(heads, kv_heads, hidden // heads, dtype, torch.device(args.device)) or "ok")
    return {"heads": heads, "kv_heads": kv_heads, "head_dim": hidden // heads, **results}


def check_default(args, size) -> dict:
    return train_run(args.out, "default", size["run"], args.device, args.run_timeout_sec)


def check_onpolicy_bf16(args, size) -> dict:
    return train_run(args.out, "onpolicy_bf16", ["--config", str(PRESETS_DIR / "onpolicy.yaml"),
                                                 "--model.dtype=bfloat16", *size["run"], *size["onpolicy"]],
                     args.device, args.run_timeout_sec)


def check_train_1b(args, size) -> dict:
    result = gpu_train_check.train_check(argparse.Namespace(out=args.out / "train_1b", device=args.device,
                                                            peak_tb_s=args.peak_tb_s, **size["train"]))
    result.pop("check")  # gpu_train_check's own name for the line
    return result


def random_model(name: str, device: str, dtype: torch.dtype):
    """A random model of gpu_train_check's shape `name` (no HF copy), on `device`."""
    from simpo_live.model.llama import LlamaModel

    vocab, hidden, intermediate, layers, heads, kv_heads, tied = gpu_train_check.SIZES[name]
    args = ModelArgs(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                     num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
                     max_position_embeddings=4096, tie_word_embeddings=tied, rope_theta=500_000.0)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaModel(args)
    return model.to(dtype).eval()


def timed_generate(model, prompts, new_tokens, device: str, **config) -> tuple[float, list[list[int]]]:
    requests = [Request(i, p, SamplingParams(temperature=0, max_new_tokens=new_tokens, ignore_eos=True))
                for i, p in enumerate(prompts)]
    longest = max(len(p) for p in prompts) + new_tokens
    with Engine(model, None, EngineConfig(max_seqs=len(prompts), max_seq_len=longest, **config)) as engine:
        engine.generate(requests[:1])  # warm-up: CUDA init, kernel compile
        bench.sync(device)
        start = time.perf_counter()
        outputs = [c.token_ids for c in engine.generate(requests)]
        bench.sync(device)
    return time.perf_counter() - start, outputs


def leading_equal(a: list[list[int]], b: list[list[int]]) -> dict:
    counts = [next((i for i, (x, y) in enumerate(zip(s, t)) if x != y), len(s)) for s, t in zip(a, b)]
    return {"rows": len(counts), "rows_all_equal": sum(c == len(s) for c, s in zip(counts, a)),
            "min_leading_equal": min(counts)}


def check_decode(args, size) -> dict:
    """Decode at many sequences of the train shape in bf16: the Triton kernel against the masked SDPA view."""
    num_prompts, new_tokens = size["decode"]
    model = random_model(size["train"]["size"], args.device, torch.bfloat16)
    prompts = bench.make_prompts(num_prompts, 16, 16, model.args.vocab_size)
    variants = ["sdpa"] if args.device == "cpu" else ["triton", "sdpa"]
    result, outputs = {"prompts": num_prompts, "new_tokens": new_tokens}, {}
    for variant in variants:
        seconds, outputs[variant] = timed_generate(model, prompts, new_tokens, args.device,
                                                   kv_layout="strided_slots", decode_attention=variant,
                                                   hbm_utilization=0.9)
        result[f"{variant}_sec"] = round(seconds, 2)
        result[f"{variant}_tok_s"] = round(num_prompts * new_tokens / seconds, 1)
    if len(variants) == 2:
        result["triton_vs_sdpa_greedy_bf16"] = leading_equal(outputs["sdpa"], outputs["triton"])
    return result


def check_engine_vs_hf(args, size) -> dict:
    hf, ours = bench.build_models(size["engine_model"], args.device, torch.bfloat16)
    engine_args = argparse.Namespace(max_seqs=1024, page_size=64, round_tokens=8192, engine_dtype=None,
                                     device=args.device, hf_batch_size=256, hf_max_batches=1)
    result = {"model": size["engine_model"], "dtype": "bfloat16", "hf_new_tokens_cap": args.hf_new_tokens}
    for name, (num_prompts, new_tokens) in size["workloads"].items():
        prompts = bench.make_prompts(num_prompts, 16, 64, bench.MODELS[size["engine_model"]]["vocab_size"])
        engine = bench.run_engine(ours, prompts, new_tokens, engine_args)
        hf_side = bench.run_hf(hf, prompts, min(new_tokens, args.hf_new_tokens), engine_args)
        result[name] = {**engine, **hf_side, "ratio": round(engine["engine_tok_s"] / hf_side["hf_tok_s"], 2)}
    return result


def check_parity(args, size) -> dict:
    hf, ours = bench.build_models(size["engine_model"], args.device, torch.float32)
    prompts = bench.make_prompts(32, 16, 64, bench.MODELS[size["engine_model"]]["vocab_size"])
    new_tokens = 32
    _, eager = timed_generate(ours, prompts, new_tokens, args.device, kv_layout="strided_slots", decode_graphs="off")
    capture_after = decode_graph.CAPTURE_AFTER_USES
    decode_graph.CAPTURE_AFTER_USES = 1  # capture every bucket at once, so every decode round replays a graph
    try:
        _, graphs = timed_generate(ours, prompts, new_tokens, args.device, kv_layout="strided_slots",
                                   decode_graphs="on", decode_attention="sdpa")
    finally:
        decode_graph.CAPTURE_AFTER_USES = capture_after
    result = {"dtype": "float32", "graphs_vs_eager": leading_equal(eager, graphs)}
    if args.device != "cpu":
        _, triton = timed_generate(ours, prompts, new_tokens, args.device, kv_layout="strided_slots",
                                   decode_graphs="off", decode_attention="triton")
        result["triton_vs_sdpa"] = leading_equal(eager, triton)
    with torch.inference_mode():
        reference = [hf.generate(torch.tensor([p], device=args.device), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)[0, len(p):].tolist()
                     for p in prompts[:8]]
    result["engine_vs_hf_greedy"] = leading_equal(reference, eager[:8])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="1b", choices=sorted(SIZES))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--checks", default=",".join(CHECKS), help="comma list of " + ", ".join(CHECKS))
    parser.add_argument("--peak-tb-s", type=float, default=4.8)
    parser.add_argument("--hf-new-tokens", type=int, default=128, help="HF generates at most this many tokens")
    parser.add_argument("--run-timeout-sec", type=float, default=180, help="limit of each end-to-end train run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    size = SIZES[args.size]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(json.dumps({"check": "device", "device": device_name, "torch": torch.__version__}), flush=True)
    for name in args.checks.split(","):
        start = time.perf_counter()
        try:
            line = {"check": name, **globals()[f"check_{name}"](args, size)}
        except Exception as error:  # one device run: a failed check costs its own line only
            traceback.print_exc()
            line = {"check": name, "error": f"{type(error).__name__}: {error}"[:500]}
        line["check_sec"] = round(time.perf_counter() - start, 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
