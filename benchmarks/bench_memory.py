"""Training memory on CPU: peak RSS of a SimPO step with and without chunked log-probs, activation
checkpointing and LoRA adapters, the memory plan's prediction beside it, and the per-rank peak RSS of 2-rank
FSDP2 loading.

Every case runs in a fresh process (peak RSS only grows), one thread, and prints one JSON line:

    PYTHONPATH=src python benchmarks/bench_memory.py                  # every case of the issue
    PYTHONPATH=src python benchmarks/bench_memory.py --cases vocab_chunked,vocab_unchunked
    PYTHONPATH=src python benchmarks/bench_memory.py --step '{"vocab": 4096, ...}'   # one step, as the test runs it

A step case builds a random model in the process, primes AdamW's moments (allocated before the measured step,
as from step 2 on; the gradients are None between updates, as `train_step` leaves them), then runs one
forward/backward/update.
`peak_step_gib` is peak RSS minus the RSS after imports, before the model: what the plan predicts.
`activation_gib` is peak RSS during the step minus the RSS just before it (activations + logits + temporaries).
Children run with MALLOC_MMAP_THRESHOLD_=131072: glibc's dynamic threshold otherwise keeps freed blocks of up to
32 MiB (e.g. per-chunk logits) in the heap, so RSS would measure the allocator's retention, not the tensors'
peak (on CUDA the plan is compared with max_memory_allocated, not reserved, for the same reason).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from simpo_live.config import load_config
from simpo_live.data import TokenizedPair, collate_pairs
from simpo_live.model import LlamaModel, ModelArgs
from simpo_live.plan.fit import GIB, MemoryPlan
from simpo_live.plan.from_config import plan_inputs

LLAMA3_VOCAB = 128_256
STEP_CASES = {
    # The vocabulary case: Llama-3 vocabulary, hidden 512, 4 layers, micro-batch 4 pairs of 2,048-token
    # rows, 1,024 response tokens per row (8,184 scored positions, the issue's ~8,000).
    "vocab_chunked": dict(vocab=LLAMA3_VOCAB, hidden=512, inter=1376, layers=4, heads=8, kv_heads=4, pairs=4,
                          prompt=1024, response=1024, chunk="auto", checkpointing=False),
    "vocab_unchunked": dict(vocab=LLAMA3_VOCAB, hidden=512, inter=1376, layers=4, heads=8, kv_heads=4, pairs=4,
                            prompt=1024, response=1024, chunk=0, checkpointing=False),
    # 12 layers of hidden 1024 on one 2,048-token pair (2 rows), with and without activation checkpointing.
    "layers_checkpointed": dict(vocab=32_000, hidden=1024, inter=2816, layers=12, heads=16, kv_heads=8, pairs=1,
                                prompt=1024, response=1024, chunk="auto", checkpointing=True),
    "layers_kept": dict(vocab=32_000, hidden=1024, inter=2816, layers=12, heads=16, kv_heads=8, pairs=1,
                        prompt=1024, response=1024, chunk="auto", checkpointing=False),
}
for _name in ("vocab_chunked", "vocab_unchunked"):  # the same with checkpointed layers: the logits dominate
    STEP_CASES[_name + "_checkpointed"] = {**STEP_CASES[_name], "checkpointing": True}
# LoRA rank 8 on every projection of a frozen fp32 base (32k vocabulary, hidden 1024, 12 layers), 2 pairs of 2,048.
STEP_CASES["lora"] = dict(vocab=32_000, hidden=1024, inter=2816, layers=12, heads=16, kv_heads=8, pairs=2,
                          prompt=1024, response=1024, chunk="auto", checkpointing=False, lora=8)
# The log-prob op alone (lm_head + log-softmax + gather, forward and backward) at 4,096 scored positions.
LOGPROB_CASES = {"logprob_chunked": dict(vocab=LLAMA3_VOCAB, hidden=512, tokens=4096, chunk="auto"),
                 "logprob_unchunked": dict(vocab=LLAMA3_VOCAB, hidden=512, tokens=4096, chunk=0)}
# TinyLlama-1.1B's shape (1.1B parameters, 4.4 GB in fp32), random, loaded by 2 FSDP2 ranks.
LOAD_MODEL = dict(vocab=32_000, hidden=2048, inter=5632, layers=22, heads=32, kv_heads=4)


def rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class AnonymousPeak:
    """Peak RssAnon, sampled every millisecond on a thread: VmHWM also counts the pages of the safetensors files
    a reader maps, which are page cache (shared between a node's ranks, dropped under pressure), not held memory."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = rss_bytes("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss_bytes("RssAnon"))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_bytes("RssAnon"))


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


def model_args(c: dict) -> ModelArgs:
    return ModelArgs(vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["inter"],
                     num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                     num_key_value_heads=c["kv_heads"], head_dim=c["hidden"] // c["heads"])


def predicted_plan(c: dict, args: ModelArgs) -> MemoryPlan:
    cfg = load_config(overrides=[f"--trainer.micro_batch_size={c['pairs']}",
                                 f"--trainer.train_batch_size={c['pairs']}",
                                 f"--trainer.logprob_chunk_tokens={c['chunk']}",
                                 f"--trainer.activation_checkpointing={str(c['checkpointing']).lower()}",
                                 "--trainer.precision=fp32", "--inference_eval.enabled=false",
                                 f"--lora.rank={c.get('lora') or 'null'}"])
    pair = TokenizedPair([1] * c["prompt"], [1] * c["response"], [1] * c["response"], "bench", "")
    return MemoryPlan.of(plan_inputs(cfg, args, 1, "cpu", pairs=[pair]), device_bytes=0)


def run_step_case(c: dict) -> dict:
    """One measured SimPO step of case `c` in this process (see the module docstring)."""
    from simpo_live.model.logprobs import resolve_chunk_tokens
    from simpo_live.train.step import StepSettings, train_step

    torch.set_num_threads(1)
    if c.get("lora"):
        import peft  # noqa: F401  the library's own code is runtime, like torch's: imported before the baseline
    baseline = rss_bytes("VmRSS")
    args = model_args(c)
    torch.manual_seed(0)
    model = LlamaModel(args)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.set_activation_checkpointing(c["checkpointing"])
    if c.get("lora"):  # peft's adapters on the frozen base, as the trainer adds them
        from simpo_live.config.schema import LoraConfig
        from simpo_live.model.lora import add_adapters, initial_adapters, peft_config, set_adapters

        config = peft_config(LoraConfig(rank=c["lora"]))
        add_adapters(model, config)
        set_adapters(model, initial_adapters(args, config, 0))
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-5)
    for p in trained:  # prime AdamW's moments, then drop the gradients as train_step does after each
        p.grad = torch.zeros_like(p)  # update: from step 2 on a step starts with the moments and no gradients
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    g = torch.Generator().manual_seed(0)
    rand = lambda n: torch.randint(4, args.vocab_size, (n,), generator=g).tolist()  # noqa: E731
    pairs = [TokenizedPair(rand(c["prompt"]), rand(c["response"]), rand(c["response"]), "bench", "")
             for _ in range(c["pairs"])]
    batch = collate_pairs(pairs, pad_id=0)
    settings = StepSettings(2.0, 0.5, 1.0, None, torch.device("cpu"),
                            resolve_chunk_tokens(c["chunk"], args.vocab_size))
    before_step = rss_bytes("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    metrics = train_step(model, optimizer, scheduler, [batch], settings)
    step_time = time.perf_counter() - start
    peak = rss_bytes("VmHWM")
    plan = predicted_plan(c, args)
    return {"params": model.num_parameters(), "scored_tokens": int(batch.response_mask[:, 1:].sum()),
            "tokens": batch.input_ids.numel(), "chunk_tokens": settings.logprob_chunk_tokens,
            "checkpointing": c["checkpointing"], "lora_rank": c.get("lora"), "step_time_sec": round(step_time, 2),
            "tokens_per_sec": round(batch.input_ids.numel() / step_time, 1),
            "loss": metrics.loss, "peak_step_gib": round((peak - baseline) / GIB, 3),
            "activation_gib": round((peak - before_step) / GIB, 3),
            "plan_train_gib": round(plan.phase_bytes("train") / GIB, 3),
            "plan_terms_gib": {name: round(b / GIB, 3) for name, phase, b in plan.terms if phase != "eval"}}


def run_logprob_case(c: dict) -> dict:
    """Peak RSS of token_logps forward + backward on random hidden states, the lm_head gradient preallocated."""
    from simpo_live.model.logprobs import resolve_chunk_tokens, token_logps
    from simpo_live.plan.terms import PlanInputs, logit_bytes

    torch.set_num_threads(1)
    torch.manual_seed(0)
    args = ModelArgs(vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=1, num_hidden_layers=1,
                     num_attention_heads=1, num_key_value_heads=1, head_dim=c["hidden"])
    chunk = resolve_chunk_tokens(c["chunk"], c["vocab"])
    hidden = torch.randn(c["tokens"], c["hidden"], requires_grad=True)  # (N, H)
    weight = (torch.randn(c["vocab"], c["hidden"]) * 0.02).requires_grad_()  # (V, H)
    weight.grad = torch.zeros_like(weight)
    targets = torch.randint(0, c["vocab"], (c["tokens"],))
    before = rss_bytes("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    token_logps(hidden, weight, targets, chunk).sum().backward()
    elapsed = time.perf_counter() - start
    inputs = PlanInputs(args=args, world_size=1, sharded=False, param_bytes=4, compute_bytes=4, autocast=False,
                        rows=1, seq_len=c["tokens"], response_tokens=c["tokens"], logprob_chunk_tokens=chunk,
                        activation_checkpointing=False)
    return {"scored_tokens": c["tokens"], "vocab": c["vocab"], "chunk_tokens": chunk,
            "time_sec": round(elapsed, 2), "peak_gib": round((rss_bytes("VmHWM") - before) / GIB, 3),
            "plan_logits_gib": round(logit_bytes(inputs) / GIB, 3)}


def make_load_model(directory: Path) -> int:
    """Write a random fp32 model of LOAD_MODEL's shape (a layer at a time would need the same safetensors call)."""
    from simpo_live.model.checkpoint import save_model

    args = model_args(LOAD_MODEL)
    with torch.device("meta"):
        model = LlamaModel(args)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    save_model(model, directory)
    return model.num_parameters()


def run_load_worker(model_dir: str) -> None:
    """Under torchrun: load `model_dir` sharded and print this rank's peak RSS (one JSON line per rank)."""
    from simpo_live.distributed.env import init_process_group, rank_info
    from simpo_live.distributed.loading import load_for_training

    torch.set_num_threads(1)
    rank = rank_info()
    baseline = rss_bytes("VmRSS")
    init_process_group(rank, torch.device("cpu"), 600.0, force=True)
    anonymous = AnonymousPeak()
    start = time.perf_counter()
    model, _ = load_for_training(model_dir, "fsdp", rank, torch.device("cpu"), "float32", False)
    load_time = time.perf_counter() - start
    peak_anon = anonymous.stop()
    shard_bytes = sum(t.to_local().numel() * 4 for t in model.state_dict().values())
    full_bytes = model.num_parameters() * 4
    print(json.dumps({"case": "fsdp_load", "rank": rank.rank, "world_size": rank.world_size,
                      "full_fp32_gib": round(full_bytes / GIB, 3), "shard_gib": round(shard_bytes / GIB, 3),
                      "peak_rss_gib": round(rss_bytes("VmHWM") / GIB, 3),
                      "peak_rss_over_full": round(rss_bytes("VmHWM") / full_bytes, 3),
                      "peak_minus_baseline_over_full": round((rss_bytes("VmHWM") - baseline) / full_bytes, 3),
                      "peak_anon_gib": round(peak_anon / GIB, 3), "peak_anon_over_full": round(peak_anon / full_bytes, 3),
                      "load_time_sec": round(load_time, 1)}), flush=True)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}


def run_load_case() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        subprocess.run([sys.executable, __file__, "--make-load-model", str(model_dir)], check=True)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                        __file__, "--load-worker", str(model_dir)], check=True, env=child_env())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join([*LOGPROB_CASES, *STEP_CASES, "fsdp_load"]))
    parser.add_argument("--step", help="a step case as JSON (STEP_CASES' keys): run it here, print its line")
    parser.add_argument("--logprob", help="a log-prob case as JSON (LOGPROB_CASES' keys): run it here")
    parser.add_argument("--make-load-model", help=argparse.SUPPRESS)
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.step:
        print(json.dumps(run_step_case(json.loads(options.step))), flush=True)
    elif options.logprob:
        print(json.dumps(run_logprob_case(json.loads(options.logprob))), flush=True)
    elif options.make_load_model:
        print(json.dumps({"case": "fsdp_load_model", "params": make_load_model(Path(options.make_load_model))}))
    elif options.load_worker:
        run_load_worker(options.load_worker)
    else:
        for name in options.cases.split(","):
            if name == "fsdp_load":
                run_load_case()
                continue
            flag, case = ("--logprob", LOGPROB_CASES[name]) if name in LOGPROB_CASES else ("--step", STEP_CASES[name])
            out = subprocess.run([sys.executable, __file__, flag, json.dumps(case)], check=True,
                                 stdout=subprocess.PIPE, text=True, env=child_env()).stdout
            print(json.dumps({"case": name, **json.loads(out.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main()
