"""GPU training check: FSDP2 (bf16 mixed precision) SimPO training of a random Llama for a few steps with one
inference eval in between, under `torchrun`; the memory plan's prediction beside the measured peak.

Prints one JSON line: step time, tokens/s, MFU, CUDA peak allocated, the plan's train and eval peaks, and the
eval's time against the HBM-bandwidth bound (weights plus the average KV read per decode step). The `1b` size is
Llama-3.2-1B's shape on 2,048-token rows with the seed's reference eval (1,024 prompts x 2,048 forced tokens):

    python benchmarks/gpu_train_check.py --out /tmp/gpu_1b --size 1b --pair-tokens 2048 \
        --eval-prompts 1024 --eval-new-tokens 2048
    python benchmarks/gpu_train_check.py --out /tmp/cpu_dry --size tiny --device cpu --pair-tokens 128 \
        --eval-prompts 8 --eval-new-tokens 8        # a CPU dry run of the script itself

MFU is the run's own `train/mfu` (model FLOPs over the device's datasheet peak, `train/throughput.py`); on a CPU
without `trainer.peak_flops` it is null.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import torch
import transformers

from simpo_live.config.schema import BUNDLED_DATA, BUNDLED_MODEL
from simpo_live.engine.capacity import kv_bytes_per_token
from simpo_live.model.checkpoint import read_model_args
from simpo_live.plan.terms import num_parameters

SIZES = {  # (vocab, hidden, intermediate, layers, heads, kv heads, tied embeddings)
    "1b": (128_256, 2048, 8192, 16, 32, 8, True),  # Llama-3.2-1B
    "0.5b": (32_000, 1024, 2816, 24, 16, 8, False),
    "tiny": (4096, 64, 128, 2, 4, 2, False),
}


def make_model(directory: Path, size: str) -> int:
    vocab, hidden, intermediate, layers, heads, kv_heads, tied = SIZES[size]
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                                      num_hidden_layers=layers, num_attention_heads=heads,
                                      num_key_value_heads=kv_heads, max_position_embeddings=8192,
                                      rope_theta=500_000.0, tie_word_embeddings=tied,
                                      bos_token_id=2, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    transformers.AutoTokenizer.from_pretrained(BUNDLED_MODEL).save_pretrained(directory)
    return model.num_parameters()


def write_long_pairs(path: Path, pair_tokens: int, rows: int) -> None:
    """Preference rows whose prompt and each response are about pair_tokens / 2 words of the bundled vocabulary
    (one token per word with the bundled tokenizer), so every row fills the 2,048-token budget."""
    words = sorted({w for line in BUNDLED_DATA.read_text().splitlines()
                    for w in json.loads(line)["prompt"].split()[1:]})
    rng = random.Random(0)
    half = pair_tokens // 2
    with path.open("w") as f:
        for _ in range(rows):
            prompt = "reverse: " + " ".join(rng.choices(words, k=half))
            answers = [" ".join(rng.choices(words, k=half)) for _ in range(2)]
            f.write(json.dumps({"prompt": prompt, **{key: [{"role": "user", "content": prompt},
                                                             {"role": "assistant", "content": answer}]
                                                       for key, answer in zip(("chosen", "rejected"), answers)}})
                    + "\n")


def planned_peaks(overrides: list[str], device: str) -> dict:
    """`simpo-live plan` for the same overrides: its train-step and eval totals in GiB."""
    out = subprocess.run([sys.executable, "-m", "simpo_live", "plan", f"--device={device}",
                          "--device-memory-gib=139", *overrides], capture_output=True, text=True).stdout
    totals = dict(re.findall(r"^\s+(train step|eval) total\s+([\d.]+) GiB", out, flags=re.M))
    return {"plan_train_gib": float(totals.get("train step", "nan")), "plan_eval_gib": float(totals.get("eval", "nan"))}


def eval_bandwidth_bound_sec(model_dir: Path, prompts: int, prompt_tokens: int, new_tokens: int,
                             peak_tb_s: float) -> float:
    """Every decode step reads the bf16 weights once and each sequence's KV so far (all prompts decoding)."""
    args = read_model_args(model_dir)
    weight_bytes = 2 * num_parameters(args)
    mean_context = prompt_tokens + new_tokens / 2
    kv_read = prompts * mean_context * kv_bytes_per_token(args, torch.bfloat16)
    return new_tokens * (weight_bytes + kv_read) / (peak_tb_s * 1e12)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="1b", choices=sorted(SIZES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--pair-tokens", type=int, default=2048, help="tokens per chosen/rejected row")
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--eval-prompts", type=int, default=1024)
    parser.add_argument("--eval-new-tokens", type=int, default=2048)
    parser.add_argument("--peak-tb-s", type=float, default=4.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    add_arguments(parser)
    print(json.dumps(train_check(parser.parse_args())), flush=True)


def train_check(args: argparse.Namespace) -> dict:
    """Make the model and data under args.out, train under torchrun with one eval, and return the result line."""
    model_dir, run_dir, data = args.out / "model", args.out / "run", args.out / "pairs.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    params = make_model(model_dir, args.size)
    write_long_pairs(data, args.pair_tokens - 16, rows=max(64, 4 * args.micro_batch * args.steps))
    overrides = [f"--model.path={model_dir}", "--model.dtype=bfloat16", f"--data.train_path={data}",
                 f"--data.max_seq_len={args.pair_tokens}", f"--data.max_prompt_len={args.pair_tokens // 2}",
                 f"--trainer.run_dir={run_dir}", f"--trainer.device={args.device}", "--trainer.strategy=fsdp",
                 f"--trainer.num_train_steps={args.steps}", f"--trainer.train_batch_size={2 * args.micro_batch}",
                 f"--trainer.micro_batch_size={args.micro_batch}", "--trainer.activation_checkpointing=true",
                 "--trainer.checkpoint_every=1000", "--trainer.progress=false", "--trainer.num_threads=4",
                 f"--inference_eval.eval_at_steps=[{args.steps // 2}]", "--inference_eval.eval_before_training=false",
                 f"--inference_eval.synthetic_prompt_count={args.eval_prompts}",
                 "--inference_eval.heldout_prompt_count=null", "--inference_eval.reward_model=null",
                 f"--inference_eval.max_new_tokens={args.eval_new_tokens}", "--inference_eval.ignore_eos=true",
                 "--inference_eval.scorer=null", f"--inference_eval.max_seqs={args.eval_prompts}"]
    plan = planned_peaks(overrides, "cuda" if args.device.startswith("cuda") else "cpu")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "simpo_live", "--",
               "train", *overrides]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "4"})
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/loss" in r]
    steady = train[1:] or train  # the first step includes warm-up
    median = lambda key: sorted(r[key] for r in steady)[len(steady) // 2]  # noqa: E731
    tokens_per_sec = median("train/tokens_per_sec")
    result = {
        "check": "gpu_train", "size": args.size, "device": args.device, "strategy": "fsdp", "steps": len(train),
        "params": params,
        "losses": [round(r["train/loss"], 4) for r in train],
        "median_step_time_sec": median("train/step_time_sec"), "median_train_tokens_per_sec": tokens_per_sec,
        "mfu": median("train/mfu") if all("train/mfu" in r for r in steady) else None,
        "peak_memory_gib": max(r.get("train/peak_memory_gib", 0.0) for r in train), **plan,
    }
    evals = [r for r in rows if "inference_eval/total_tokens" in r]
    if evals:
        e = evals[0]
        result.update({k.removeprefix("inference_eval/"): e[k] for k in e if k.startswith("inference_eval/") and (
            "memory" in k or k.endswith(("tokens_per_second", "total_tokens", "generation_time_sec",
                                         "total_callback_time_sec", "engine_creation_time_sec")))})
        bound = eval_bandwidth_bound_sec(model_dir, args.eval_prompts, 16, args.eval_new_tokens, args.peak_tb_s)
        result["eval_hbm_bound_sec"] = round(bound, 2)
    return result


if __name__ == "__main__":
    main()
