"""The inference engine: page-accounted KV cache, continuous batching, chunked prefill, per-request seeded sampling.

    with Engine(model, tokenizer, EngineConfig(max_seqs=256)) as engine:
        completions = engine.generate([Request("a", prompt_ids, SamplingParams(temperature=0, max_new_tokens=64))])

Files follow nano-vllm: params (public types), sequence (per-sample state), block_manager (pages and placement),
scheduler (who runs), kv_cache (KV sizing and the storage factory), chunked_slots and strided_slots (the two KV
layouts, CPU and CUDA, each with its decode attention), attention (the model's attention backend for one round),
decode_graph (CUDA graphs for decode-only rounds), runner (one round on the model), sampler (seeded token choice),
weights (the model itself, or its `compute_dtype` copy), engine (the wiring).
On CPU a sample's tokens do not depend on its batch-mates, batch size, request order, page size or memory
pressure (tested, fp32 and `compute_dtype=torch.bfloat16`); on CUDA that is not guaranteed (GEMM kernels are
chosen by shape). For speed on CPU use `EngineConfig(compute_dtype=torch.bfloat16)` (figures in
docs/decisions.md; its tokens differ from fp32's).
"""

from simpo_live.engine.engine import CapacityError, Engine, default_stop_token_ids
from simpo_live.engine.params import Completion, EngineConfig, Request, SamplingParams, StepResult

__all__ = ["CapacityError", "Completion", "Engine", "EngineConfig", "Request", "SamplingParams", "StepResult",
           "default_stop_token_ids"]
