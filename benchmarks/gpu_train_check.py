"""GPU training check: FSDP2 (bf16 mixed precision) SimPO training of a random ~0.5B Llama for a few steps
with one inference eval in between, under `torchrun`. Prints one JSON line: step time, tokens/s, peak
memory, eval tokens/s and memory around the eval. Run on a CUDA machine:

    python benchmarks/gpu_train_check.py --out /tmp/gpu_train
    python benchmarks/gpu_train_check.py --out /tmp/cpu_dry --size tiny --device cpu   # a CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import transformers

from simpo_live.config.schema import BUNDLED_MODEL

SIZES = {  # (hidden, intermediate, layers, heads, kv heads)
    "0.5b": (1024, 2816, 24, 16, 8),
    "tiny": (64, 128, 2, 4, 2),
}


def make_model(directory: Path, size: str) -> None:
    hidden, intermediate, layers, heads, kv_heads = SIZES[size]
    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=intermediate,
                                      num_hidden_layers=layers, num_attention_heads=heads,
                                      num_key_value_heads=kv_heads, max_position_embeddings=4096,
                                      bos_token_id=2, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(directory)
    transformers.AutoTokenizer.from_pretrained(BUNDLED_MODEL).save_pretrained(directory)
    print(json.dumps({"model_params": sum(p.numel() for p in model.parameters())}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", default="0.5b", choices=sorted(SIZES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--eval-prompts", type=int, default=256)
    parser.add_argument("--eval-new-tokens", type=int, default=256)
    args = parser.parse_args()
    model_dir, run_dir = args.out / "model", args.out / "run"
    make_model(model_dir, args.size)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "simpo_live", "--", "train",
               f"--model.path={model_dir}", f"--trainer.run_dir={run_dir}", f"--trainer.device={args.device}",
               "--trainer.strategy=fsdp", f"--trainer.num_train_steps={args.steps}", "--trainer.train_batch_size=32",
               "--trainer.micro_batch_size=16", "--trainer.checkpoint_every=1000", "--trainer.validate_every=1000",
               "--trainer.progress=false", "--trainer.num_threads=4",
               f"--inference_eval.eval_at_steps=[{args.steps // 2}]", "--inference_eval.eval_before_training=false",
               f"--inference_eval.synthetic_prompt_count={args.eval_prompts}",
               "--inference_eval.heldout_prompt_count=null",
               f"--inference_eval.max_new_tokens={args.eval_new_tokens}", "--inference_eval.ignore_eos=true",
               "--inference_eval.scorer=null", "--inference_eval.max_seqs=256"]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "4"})
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/loss" in r]
    steady = train[1:] or train  # the first step includes warm-up
    evals = [r for r in rows if "inference_eval/total_tokens" in r]
    result = {
        "check": "gpu_train", "size": args.size, "device": args.device, "strategy": "fsdp", "steps": len(train),
        "losses": [round(r["train/loss"], 4) for r in train],
        "median_step_time_sec": sorted(r["train/step_time_sec"] for r in steady)[len(steady) // 2],
        "median_train_tokens_per_sec": sorted(r["train/tokens_per_sec"] for r in steady)[len(steady) // 2],
        "peak_memory_gib": max(r.get("train/peak_memory_gib", 0.0) for r in train),
    }
    if evals:
        e = evals[0]
        result.update({k.removeprefix("inference_eval/"): e[k] for k in e if k.startswith("inference_eval/") and (
            "memory" in k or k.endswith(("tokens_per_second", "total_tokens", "generation_time_sec",
                                         "total_callback_time_sec", "engine_creation_time_sec")))})
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
