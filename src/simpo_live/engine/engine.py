"""The engine: requests in, completions out. Wires the block manager, scheduler and runner together.

`generate(requests)` runs everything to completion; `add_request` + `step` stream progress. Requests are checked
at the door: one that could never finish (longer than max_seq_len, or larger than the whole KV cache) is refused
with the knob to change, never truncated. Use it as a context manager to free the KV cache on exit.
"""

from __future__ import annotations

import torch

from simpo_live.engine.capacity import kv_cache_pages
from simpo_live.engine.kv_cache import build_storage
from simpo_live.engine.params import Completion, EngineConfig, Request, StepResult
from simpo_live.engine.runner import Runner
from simpo_live.engine.scheduler import Scheduler
from simpo_live.engine.sequence import Sequence
from simpo_live.engine.weights import ComputeWeights
from simpo_live.model.llama import LlamaModel
from simpo_live.seeds import derive_seed

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|end_of_turn|>")


class CapacityError(ValueError):
    """A request the engine could never finish with its current configuration."""


def default_stop_token_ids(tokenizer, model: LlamaModel) -> frozenset[int]:
    """EOS (tokenizer's and config.json's) plus the chat template's end-of-turn tokens present in the vocabulary."""
    ids: set[int] = set()
    eos = model.args.eos_token_id
    ids.update(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if tokenizer is not None:
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        vocab = tokenizer.get_vocab()
        ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return frozenset(ids)


class Engine:
    """Generates with `model`'s current weights: shared, or with `config.compute_dtype` a copy that is refreshed
    whenever they change (weights.py); either way updates are seen at the next step. `storage_factory` lays out the
    KV cache (kv_cache.build_storage; tests pass reference layouts of their own)."""

    def __init__(self, model: LlamaModel, tokenizer=None, config: EngineConfig | None = None,
                 storage_factory=build_storage):
        config = config or EngineConfig()
        device = model.lm_head.weight.device
        if config.device is not None and torch.device(config.device) != device:
            raise ValueError(f"engine config error: device {config.device} but the model is on {device}; "
                             "load or move the model to that device first")
        self.weights = ComputeWeights(model, config.compute_dtype)
        self.model = self.weights.model  # what runs: `model` itself, or its compute_dtype copy (weights.py)
        self.tokenizer = tokenizer
        self.config = config
        model_max = model.args.max_position_embeddings
        self.max_seq_len = config.max_seq_len or model_max
        if self.max_seq_len > model_max:
            raise ValueError(f"engine config error: max_seq_len {self.max_seq_len} exceeds the model's "
                             f"max_position_embeddings {model_max}")
        dtype = config.dtype or self.model.lm_head.weight.dtype
        self.num_pages = kv_cache_pages(config, model.args, self.max_seq_len, dtype, device)
        self.page_size = config.page_size
        storage = storage_factory(config, self.model, self.num_pages, self.max_seq_len, dtype, device)
        self.block_manager = storage.placement
        self.kv_cache_bytes = storage.num_bytes
        self.scheduler = Scheduler(self.block_manager, config.max_seqs, config.max_tokens_per_round)
        self.runner = Runner(self.model, storage)
        self.stop_token_ids = default_stop_token_ids(tokenizer, model)
        self._closed = False

    def check_request(self, request: Request) -> None:
        """Raise CapacityError (or ValueError) if `request` could never complete with this configuration."""
        num_prompt = len(request.prompt_token_ids)
        name = f"request {request.request_id!r}"
        if num_prompt == 0:
            raise ValueError(f"{name}: empty prompt")
        vocab = self.model.args.vocab_size
        if any(not 0 <= t < vocab for t in request.prompt_token_ids):
            raise ValueError(f"{name}: prompt token ids must be in [0, {vocab})")
        total = num_prompt + request.params.max_new_tokens
        if total > self.max_seq_len:
            raise CapacityError(
                f"{name}: prompt {num_prompt} + max_new_tokens {request.params.max_new_tokens} = {total:,} tokens "
                f"exceeds max_seq_len {self.max_seq_len:,}: lower max_new_tokens or shorten the prompt")
        pages = self.block_manager.pages_needed(total)
        if pages > self.num_pages:
            raise CapacityError(
                f"{name}: prompt {num_prompt} needs {pages} pages ({total:,} tokens) but the cache has "
                f"{self.num_pages} pages of {self.page_size}: raise max_pages (or hbm_utilization) "
                "or lower max_new_tokens")

    def add_request(self, request: Request) -> None:
        """Queue a request's `n` samples; sample j is seeded with derive_seed(params.seed, j)."""
        if self._closed:
            raise RuntimeError("engine is closed")
        self.check_request(request)
        params = request.params
        stops = frozenset(params.stop_token_ids or ())
        if not params.ignore_eos:
            stops |= self.stop_token_ids
        for j in range(params.n):
            self.scheduler.add(Sequence(request.request_id, j, request.prompt_token_ids, params,
                                        derive_seed(params.seed, j), stops))

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> StepResult:
        """Run one round: every running sequence decodes a token, and prompt chunks are prefilled."""
        if self._closed:
            raise RuntimeError("engine is closed")
        batch = self.scheduler.schedule()
        if batch:
            self.weights.sync()  # a compute_dtype copy follows in-place updates of the model (weights.py)
        if not batch:
            if self.has_unfinished():
                raise RuntimeError("scheduler produced an empty round with requests pending")
            return StepResult([], 0, 0)
        token_ids, logprobs = self.runner.run(batch)
        finished = self.scheduler.postprocess(batch, token_ids, logprobs)
        num_prompt = sum(c.end - c.start for c in batch.prefill)
        return StepResult([self._completion(s) for s in finished], len(token_ids), num_prompt)

    def _completion(self, seq: Sequence) -> Completion:
        output = seq.output_token_ids
        text = self.tokenizer.decode(output, skip_special_tokens=True) if self.tokenizer is not None else ""
        return Completion(request_id=seq.request_id, sample_index=seq.sample_index,
                          prompt_token_count=seq.num_prompt_tokens, token_ids=output, text=text,
                          finish_reason=seq.finish_reason, seed=seq.seed, logprobs=seq.logprobs)

    def generate(self, requests: list[Request], on_step=None) -> list[Completion]:
        """Complete every request; returns completions in request order, then sample order.
        `on_step(StepResult)` is called after each round (progress bars)."""
        ids = [r.request_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("generate: request ids must be unique")
        for request in requests:
            self.check_request(request)  # all refused before any runs
        self.weights.sync(force=True)  # also catches updates made through `param.data` (no version bump)
        for request in requests:
            self.add_request(request)
        done: dict = {}
        while self.has_unfinished():
            result = self.step()
            for completion in result.finished:
                done[(completion.request_id, completion.sample_index)] = completion
            if on_step is not None:
                on_step(result)
        return [done[(r.request_id, j)] for r in requests for j in range(r.params.n)]

    def close(self) -> None:
        """Free the KV cache (and cached CUDA blocks); the engine cannot step afterwards."""
        self._closed = True
        self.runner.close()
        if self.runner.device.type == "cuda":
            torch.cuda.empty_cache()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
