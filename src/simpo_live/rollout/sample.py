"""`simpo-live sample`: generate from a checkpoint; under torchrun each rank writes its contiguous slice.

Ranks need no collective: each one loads a full replica, generates global prompts [rank*N//P, (rank+1)*N//P)
and writes `host_<rank>_of_<P>.jsonl` plus a done marker into `--out`. Only the leader shows a progress bar.
A caller that decides the slice itself (the eval's subprocess isolation) passes `--slice`, `--host` and the whole
`--engine-config`, and the command obeys them instead of the rank environment.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from simpo_live.distributed.env import rank_info
from simpo_live.distributed.sharding import shard_bounds
from simpo_live.config.load import ConfigError
from simpo_live.engine import CapacityError, Engine, EngineConfig
from simpo_live.errors import UserError
from simpo_live.model.checkpoint import DTYPES
from simpo_live.rollout.generation import GenerationSettings, generate_shard, required_max_seq_len
from simpo_live.rollout.host_files import write_host_file
from simpo_live.rollout.prompts import PromptError, load_prompts_with_sources, synthetic_prompts
from simpo_live.rollout.requests import RequestKnobs, check_requests_fit
from simpo_live.run_dir import check_writable_dir

KNOBS = RequestKnobs(max_new_tokens="--max-new-tokens", max_pages="--max-pages")


class SampleInputError(UserError):
    """A bad argument of the command, named; the CLI prints it and exits with 2."""

    exit_code = 2

    def describe(self) -> str:
        return f"simpo-live sample: error: {self}"


@dataclass(frozen=True)
class Share:
    """Which global prompts this process generates, and the host index/count its rows and file carry."""

    start: int
    end: int
    host: int
    num_hosts: int


def parse_pair(text: str, separator: str, option: str) -> tuple[int, int]:
    left, found, right = text.partition(separator)
    try:
        if not found:
            raise ValueError
        return int(left), int(right)
    except ValueError:
        raise SampleInputError(f"{option} {text!r}: expected two integers as A{separator}B") from None


def resolve_share(num_prompts: int, prompt_slice: str | None, host: str | None) -> Share:
    info = rank_info()
    index, count = parse_pair(host, "/", "--host") if host else (info.rank, info.world_size)
    if not 0 <= index < count:
        raise SampleInputError(f"--host {host}: the index must be in [0, count)")
    if prompt_slice is None:
        return Share(*shard_bounds(num_prompts, index, count), index, count)
    start, end = parse_pair(prompt_slice, ":", "--slice")
    if not 0 <= start <= end <= num_prompts:
        raise SampleInputError(f"--slice {prompt_slice}: must satisfy 0 <= START <= END <= {num_prompts} prompts")
    return Share(start, end, index, count)


def engine_config_for(engine_config_file: str | None, max_seq_len: int, max_seqs: int, max_pages: int | None,
                      page_size: int) -> EngineConfig:
    if engine_config_file is None:
        return EngineConfig(max_seqs=max_seqs, max_pages=max_pages, page_size=page_size, max_seq_len=max_seq_len)
    try:
        return EngineConfig.from_dict(json.loads(Path(engine_config_file).read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise SampleInputError(f"--engine-config {engine_config_file}: {e}") from None


def read_sample_prompts(prompts_file: str | None, synthetic: int | None) -> list[tuple[str, str]]:
    """(prompt, source) pairs from exactly one of --prompts FILE or --synthetic N."""
    if (prompts_file is None) == (synthetic is None):
        raise SampleInputError("give exactly one of --prompts FILE or --synthetic N")
    if synthetic is not None:
        return [(p, f"synthetic prompt {i}") for i, p in enumerate(synthetic_prompts(synthetic))]
    try:
        prompts = load_prompts_with_sources(prompts_file)
    except PromptError as e:
        raise SampleInputError(f"--prompts {e}") from None
    if not prompts:
        raise SampleInputError(f"--prompts {prompts_file}: no prompts in the file")
    return prompts


def check_sample_requests_fit(tokenizer, prompts: list[tuple[str, str]], settings: GenerationSettings,
                              context: int, max_pages: int | None, page_size: int) -> None:
    """Refuse, before generating anything, a prompt whose request cannot fit the model's context or the cache."""
    try:
        check_requests_fit(tokenizer, prompts, settings.use_chat_template, settings.max_new_tokens, context, KNOBS,
                           max_pages, page_size)
    except ConfigError as e:
        raise SampleInputError(e.problems[0]) from None


def run_sample_command(model_dir: str, prompts_file: str | None, synthetic: int | None, max_new_tokens: int,
                       out_dir: str, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                       n_samples: int = 1, ignore_eos: bool = False, stop_token_ids: tuple[int, ...] = (),
                       no_chat_template: bool = False, step: int = 0,
                       max_seqs: int = 256, max_pages: int | None = None, page_size: int = 16,
                       dtype: str = "auto", engine_config_file: str | None = None, prompt_slice: str | None = None,
                       host: str | None = None) -> int:
    """Run the command; returns the process exit code (0 ok). Bad arguments raise SampleInputError (exit code 2)."""
    from tqdm import tqdm

    from simpo_live.data import load_tokenizer
    from simpo_live.model.checkpoint import load_model

    if not Path(model_dir).is_dir():
        raise SampleInputError(f"--model {model_dir}: directory not found")
    with_sources = read_sample_prompts(prompts_file, synthetic)
    prompts = [p for p, _ in with_sources]
    share = resolve_share(len(prompts), prompt_slice, host)
    try:
        check_writable_dir(out_dir, "--out")
    except UserError as e:
        raise SampleInputError(str(e)) from None

    info = rank_info()
    device = torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    torch_dtype = DTYPES.get(dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)
    try:
        model = load_model(model_dir, torch_dtype, device).eval()
        tokenizer = load_tokenizer(model_dir)
    except UserError as e:
        raise SampleInputError(f"--model {e}") from None

    mine = prompts[share.start: share.end]
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                  n=n_samples, ignore_eos=ignore_eos, stop_token_ids=tuple(stop_token_ids), seed=seed,
                                  use_chat_template=not no_chat_template)
    check_sample_requests_fit(tokenizer, with_sources, settings, model.args.max_position_embeddings, max_pages,
                              page_size)
    # Capped at the model's context: a longer request is then refused by the engine with the knobs to change.
    max_seq_len = min(model.args.max_position_embeddings, required_max_seq_len(tokenizer, mine, settings))
    config = engine_config_for(engine_config_file, max_seq_len, max_seqs, max_pages, page_size)
    bar = tqdm(total=len(mine) * n_samples * max_new_tokens, unit="tok", unit_scale=True,
               desc=f"sample (host {share.host} of {share.num_hosts})", disable=not info.is_leader)
    began = time.perf_counter()
    try:
        with Engine(model, tokenizer, config) as engine:
            rows = generate_shard(engine, mine, share.start, settings, step, share.host, share.num_hosts,
                                  provenance={"model_path": str(Path(model_dir).resolve())},
                                  on_step=lambda result: bar.update(result.num_generated_tokens))
    except CapacityError as e:  # a request that cannot fit the cache names its knob; no traceback needed
        raise SampleInputError(str(e)) from None
    finally:
        bar.close()
    path = write_host_file(out_dir, [row.to_json() for row in rows], share.host, share.num_hosts)
    if info.is_leader:
        tokens = sum(row.generated_token_count for row in rows)
        seconds = time.perf_counter() - began
        print(f"host {share.host}: {len(rows)} samples, {tokens} tokens in {seconds:.1f}s "
              f"({tokens / max(seconds, 1e-9):.0f} tok/s) -> {path}", file=sys.stderr)
    return 0
