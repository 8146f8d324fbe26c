"""GPU check: engine vs `transformers` generate (bf16, random ~0.5B Llama) on W2/W3, plus the share of HBM
bandwidth the engine's decode-only steps reach: (weight bytes + KV bytes read) / step time / peak bandwidth.

    PYTHONPATH=src python benchmarks/gpu_check.py --workloads W2,W3 --peak-tb-s 4.8
"""

from __future__ import annotations

import argparse
import json
import time
import traceback

import torch

import bench_generate as bench
from simpo_live.engine import Engine, EngineConfig, Request, SamplingParams
from simpo_live.engine.capacity import kv_bytes_per_token


def decode_bandwidth(model, prompts, new_tokens, args, variant: str) -> dict:
    """Time decode-only engine steps (no prefill in the round) and the bytes they must read."""
    layout, graphs = variant.split(":")
    config = EngineConfig(max_seqs=args.max_seqs, page_size=args.page_size, max_seq_len=1024,
                          max_tokens_per_round=args.round_tokens, decode_graphs=graphs, kv_layout=layout)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_token_bytes = kv_bytes_per_token(model.args, next(model.parameters()).dtype)
    records = []
    with Engine(model, None, config) as engine:
        for i, p in enumerate(prompts):
            engine.add_request(Request(i, p, SamplingParams(temperature=1.0, max_new_tokens=new_tokens,
                                                            ignore_eos=True, seed=i)))
        while engine.has_unfinished():
            running = list(engine.scheduler.running)
            decode_only = not engine.scheduler.waiting and all(not s.is_prefilling for s in running)
            context = sum(s.num_tokens for s in running)
            bench.sync(args.device)
            start = time.perf_counter()
            result = engine.step()
            bench.sync(args.device)
            if decode_only and result.num_prompt_tokens == 0:
                records.append((time.perf_counter() - start, len(running), context))
    if not records:
        return {}
    records.sort()
    step_sec, batch, context = records[len(records) // 2]  # the median decode step
    read = weight_bytes + context * kv_token_bytes
    return {"variant": variant, "decode_steps_timed": len(records), "median_decode_step_ms": round(step_sec * 1e3, 2),
            "median_step_batch": batch, "median_step_context_tokens": context,
            "bytes_read_per_step_gb": round(read / 1e9, 3), "achieved_tb_s": round(read / step_sec / 1e12, 3),
            "hbm_share": round(read / step_sec / (args.peak_tb_s * 1e12), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-size", default="0.5b", choices=sorted(bench.MODELS))
    parser.add_argument("--workloads", default="W2,W3")
    parser.add_argument("--max-seqs", type=int, default=256)
    parser.add_argument("--page-size", type=int, default=64)
    parser.add_argument("--round-tokens", type=int, default=8192)
    parser.add_argument("--hf-batch-size", type=int, default=256)
    parser.add_argument("--hf-max-batches", type=int, default=1)
    parser.add_argument("--peak-tb-s", type=float, default=None, help="HBM peak; default: 4.8 on H200, 3.35 on H100")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bandwidth-tokens", type=int, default=128)
    parser.add_argument("--variants", default="strided_slots:off,strided_slots:auto",
                        help="engine variants KV_LAYOUT:DECODE_GRAPHS, all measured in the same run")
    parser.add_argument("--skip-workloads", action="store_true", help="only the bandwidth and greedy checks")
    parser.add_argument("--skip-checks", action="store_true", help="only the workloads (no graph, bandwidth or "
                                                                    "greedy checks)")
    args = parser.parse_args()
    args.dtype = "bfloat16"
    args.engine_dtype = None  # the model is already bf16
    hf, ours = bench.build_models(args.model_size, args.device, torch.bfloat16)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    if args.peak_tb_s is None:
        args.peak_tb_s = 4.8 if "H200" in name else 3.35 if "H100" in name else float("nan")
    print(json.dumps({"gpu": name, "torch": torch.__version__,
                      "params": ours.num_parameters()}), flush=True)
    if not args.skip_checks:
        try:
            prompts = bench.make_prompts(64, 16, 64, bench.MODELS[args.model_size]["vocab_size"])
            print(json.dumps(variant_agreement(ours, prompts, args.variants.split(","))), flush=True)
        except Exception:
            traceback.print_exc()
    for name in [] if args.skip_workloads else args.workloads.split(","):
        try:
            num_prompts, new_tokens = bench.WORKLOADS[name]
            prompts = bench.make_prompts(num_prompts, 16, 64, bench.MODELS[args.model_size]["vocab_size"])
            result = {"workload": name, "prompts": num_prompts, "new_tokens": new_tokens, "model": args.model_size,
                      "dtype": "bfloat16", "max_seqs": args.max_seqs}
            for variant in args.variants.split(","):  # every engine variant in the same run, then HF once
                args.kv_layout, args.decode_graphs = variant.split(":")
                engine = bench.run_engine(ours, prompts, new_tokens, args)
                result.update({f"{variant}_{k}": v for k, v in engine.items()})
            print(json.dumps(result), flush=True)  # engine figures survive a slow or failing HF side
            result.update(bench.run_hf(hf, prompts, new_tokens, args))
            for variant in args.variants.split(","):
                result[f"{variant}_ratio"] = round(result[f"{variant}_engine_tok_s"] / result["hf_tok_s"], 2)
            print(json.dumps(result), flush=True)
        except Exception:  # one failed workload must not cost the others (one GPU run only)
            traceback.print_exc()
    if args.skip_checks:
        return
    try:
        prompts = bench.make_prompts(256, 16, 64, bench.MODELS[args.model_size]["vocab_size"])
        for variant in args.variants.split(","):
            print(json.dumps({"bandwidth_workload": f"256 prompts x {args.bandwidth_tokens} tokens",
                              "kv_bytes": "each context read once (the gather copy is not counted)",
                              **decode_bandwidth(ours, prompts, args.bandwidth_tokens, args, variant)}), flush=True)
        print(json.dumps(greedy_agreement(hf, ours, prompts[:8], args)), flush=True)
    except Exception:
        traceback.print_exc()


def variant_agreement(ours, prompts, variants: list[str]) -> dict:
    """Greedy tokens of each engine variant against the first (bf16: GEMM kernels may differ with the row count)."""
    outputs, seconds, buckets = {}, {}, {}
    for variant in variants:
        layout, graphs = variant.split(":")
        with Engine(ours, None, EngineConfig(max_seq_len=256, decode_graphs=graphs,
                                                        kv_layout=layout)) as engine:
            start = time.perf_counter()
            outputs[variant] = [c.token_ids for c in engine.generate(
                [Request(i, p, SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True))
                 for i, p in enumerate(prompts)])]
            seconds[variant] = round(time.perf_counter() - start, 3)
            buckets[variant] = sorted(engine.runner.graphs.buckets) if engine.runner.graphs else []
    first = outputs[variants[0]]
    equal = {v: [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), 32) for x, y in zip(first, outputs[v])]
             for v in variants[1:]}
    return {"leading_equal_tokens_vs_" + variants[0]: equal, "seconds": seconds, "graph_buckets": buckets}


def greedy_agreement(hf, ours, prompts, args) -> dict:
    """bf16 cannot match exactly; report how many leading greedy tokens agree with HF's greedy generate."""
    with Engine(ours, None, EngineConfig(max_seq_len=256)) as engine:
        mine = engine.generate([Request(i, p, SamplingParams(temperature=0, max_new_tokens=16, ignore_eos=True))
                                for i, p in enumerate(prompts)])
    agree = []
    for p, c in zip(prompts, mine):
        ref = hf.generate(torch.tensor([p], device=args.device), max_new_tokens=16, min_new_tokens=16,
                          do_sample=False, pad_token_id=0)[0, len(p):].tolist()
        agree.append(next((i for i, (a, b) in enumerate(zip(ref, c.token_ids)) if a != b), 16))
    return {"greedy_leading_tokens_equal_to_hf_bf16": agree}


if __name__ == "__main__":
    main()
