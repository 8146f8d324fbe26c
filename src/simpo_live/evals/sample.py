"""`simpo-live sample`: generate from a checkpoint; under torchrun each rank writes its contiguous slice.

Ranks need no collective: each one loads a full replica, generates global prompts [rank*N//P, (rank+1)*N//P)
and writes `host_<rank>_of_<P>.jsonl` plus a done marker into `--out`. Only the leader shows a progress bar.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from simpo_live.distributed.env import rank_info
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.engine import CapacityError, Engine, EngineConfig
from simpo_live.errors import UserError
from simpo_live.evals.generation import (
    GenerationSettings,
    generate_shard,
    longest_prompt,
    required_max_seq_len,
    write_host_file,
)
from simpo_live.evals.prompts import PromptError, load_prompts_with_sources, synthetic_prompts
from simpo_live.run_dir import check_writable_dir


class SampleError(UserError):
    """A `simpo-live sample` argument that cannot be used; the message names the option."""

    exit_code = 2

    def describe(self) -> str:
        return f"simpo-live sample: error: {self}"


def read_sample_prompts(prompts_file: str | None, synthetic: int | None) -> list[tuple[str, str]]:
    """(prompt, source) pairs from exactly one of --prompts FILE or --synthetic N."""
    if (prompts_file is None) == (synthetic is None):
        raise SampleError("give exactly one of --prompts FILE or --synthetic N")
    if synthetic is not None:
        return [(p, f"synthetic prompt {i}") for i, p in enumerate(synthetic_prompts(synthetic))]
    try:
        prompts = load_prompts_with_sources(prompts_file)
    except PromptError as e:
        raise SampleError(f"--prompts {e}") from None
    if not prompts:
        raise SampleError(f"--prompts {prompts_file}: no prompts in the file")
    return prompts


def check_requests_fit(tokenizer, prompts: list[tuple[str, str]], settings: GenerationSettings, context: int,
                       max_pages: int | None, page_size: int) -> None:
    """Refuse, before generating anything, a prompt whose request cannot fit the model's context or the cache."""
    index, prompt_tokens = longest_prompt(tokenizer, [p for p, _ in prompts], settings.use_chat_template)
    total = prompt_tokens + settings.max_new_tokens
    which = f"prompt {index} ({prompts[index][1]})"
    if total > context:
        raise SampleError(f"{which} has {prompt_tokens} tokens; + --max-new-tokens {settings.max_new_tokens} = "
                          f"{total} exceeds the model's context of {context}: lower --max-new-tokens or shorten it")
    pages = -(-total // page_size)
    if max_pages is not None and pages > max_pages:
        raise SampleError(f"{which} needs {total} tokens = {pages} pages of {page_size} but --max-pages is "
                          f"{max_pages}: raise --max-pages or lower --max-new-tokens")


def run_sample_command(model_dir: str, prompts_file: str | None, synthetic: int | None, max_new_tokens: int,
                       out_dir: str, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                       n_samples: int = 1, ignore_eos: bool = False, no_chat_template: bool = False, step: int = 0,
                       max_seqs: int = 256, max_pages: int | None = None, page_size: int = 16,
                       dtype: str = "auto") -> int:
    """Run the command; returns the process exit code (0 ok). Bad arguments raise SampleError (exit code 2)."""
    from tqdm import tqdm

    from simpo_live.data import load_tokenizer
    from simpo_live.model.checkpoint import load_model

    if not Path(model_dir).is_dir():
        raise SampleError(f"--model {model_dir}: directory not found")
    with_sources = read_sample_prompts(prompts_file, synthetic)
    prompts = [p for p, _ in with_sources]
    try:
        check_writable_dir(out_dir, "--out")
    except UserError as e:
        raise SampleError(str(e)) from None

    info = rank_info()
    device = torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)
    try:
        model = load_model(model_dir, torch_dtype, device).eval()
        tokenizer = load_tokenizer(model_dir)
    except UserError as e:
        raise SampleError(f"--model {e}") from None

    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                  n=n_samples, ignore_eos=ignore_eos, seed=seed,
                                  use_chat_template=not no_chat_template)
    check_requests_fit(tokenizer, with_sources, settings, model.args.max_position_embeddings, max_pages, page_size)
    start, end = shard_bounds(len(prompts), info.rank, info.world_size)
    # Capped at the model's context: a longer request is then refused by the engine with the knobs to change.
    max_seq_len = min(model.args.max_position_embeddings,
                      required_max_seq_len(tokenizer, prompts[start:end], settings))
    config = EngineConfig(max_seqs=max_seqs, max_pages=max_pages, page_size=page_size, max_seq_len=max_seq_len)
    bar = tqdm(total=(end - start) * n_samples * max_new_tokens, unit="tok", unit_scale=True,
               desc=f"sample (rank 0 of {info.world_size})", disable=not info.is_leader)
    began = time.perf_counter()
    try:
        with Engine.from_model(model, tokenizer, config) as engine:
            rows = generate_shard(engine, prompts[start:end], start, settings, step, info.rank, info.world_size,
                                  provenance={"model_path": str(Path(model_dir).resolve())},
                                  on_step=lambda result: bar.update(result.num_generated_tokens))
    except CapacityError as e:  # a request that cannot fit the cache names its knob; no traceback needed
        raise SampleError(str(e)) from None
    finally:
        bar.close()
    path = write_host_file(out_dir, rows, info.rank, info.world_size)
    if info.is_leader:
        tokens = sum(r["generated_token_count"] for r in rows)
        seconds = time.perf_counter() - began
        print(f"rank 0: {len(rows)} samples, {tokens} tokens in {seconds:.1f}s ({tokens / seconds:.0f} tok/s) "
              f"-> {path}", file=sys.stderr)
    return 0
