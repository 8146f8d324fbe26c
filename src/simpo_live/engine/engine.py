"""The engine: requests in, completions out. Wires the block manager, scheduler and runner together.

`generate(requests)` runs everything to completion; `add_request` + `step` stream progress. Requests are checked
at the door: one that could never finish (longer than max_seq_len, or larger than the whole KV cache) is refused
with the knob to change, never truncated. Use it as a context manager to free the KV cache on exit.
"""

from __future__ import annotations

import torch

from simpo_live.engine.block_manager import PageRuns, PageSlots
from simpo_live.engine.kv_cache import RunCache, SlotCache, free_memory_bytes, kv_bytes_per_token
from simpo_live.engine.params import Completion, EngineConfig, Request, StepResult
from simpo_live.engine.decode_graph import DecodeGraphs
from simpo_live.engine.runner import MIN_ROWS, Runner
from simpo_live.engine.sampler import derive_seed
from simpo_live.engine.scheduler import Scheduler
from simpo_live.engine.sequence import Sequence
from simpo_live.engine.weights import ComputeWeights
from simpo_live.model.llama import LlamaModel

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


def kv_cache_pages(config: EngineConfig, model: LlamaModel, max_seq_len: int, dtype: torch.dtype,
                   device: torch.device) -> int:
    """Pages to allocate: `max_pages`, else `hbm_utilization` of free memory, never more than could be used."""
    useful = -(-config.max_seqs * max_seq_len // config.page_size)
    if config.max_pages is not None:
        return config.max_pages
    page_bytes = config.page_size * kv_bytes_per_token(model.args, dtype)
    return max(1, min(useful, int(free_memory_bytes(device) * config.hbm_utilization) // page_bytes))


def fixed_slots(config: EngineConfig, num_pages: int, max_seq_len: int) -> PageSlots:
    """Slots of max_seq_len tokens that together fit the page budget: lower max_seq_len for more of them."""
    slot_pages = min(num_pages, -(-max_seq_len // config.page_size))
    return PageSlots(num_pages, config.page_size, min(config.max_seqs, num_pages // slot_pages), slot_pages)


def build_storage(config: EngineConfig, model: LlamaModel, num_pages: int, max_seq_len: int, dtype: torch.dtype,
                  device: torch.device) -> tuple[PageSlots | PageRuns, SlotCache | RunCache, str, DecodeGraphs | None]:
    """The placement, KV tensors, decode mode and decode graphs for `config` on `device`: chunk-major slots on CPU,
    strided slots with CUDA graphs on CUDA (H200, 0.35B, W2: 23.2k tok/s against 17.5k for page runs + gather and
    9.6k eager), unless the config says otherwise."""
    layout = config.kv_layout if config.kv_layout != "auto" else ("strided_slots" if device.type == "cuda" else "slots")
    mode = "loop" if config.decode_attention == "loop" else "batched"
    if layout == "slots":
        if config.decode_graphs == "on":
            raise ValueError("engine config error: decode_graphs 'on' needs kv_layout 'runs' or 'strided_slots' "
                             "(got 'slots')")
        placement = fixed_slots(config, num_pages, max_seq_len)
        return placement, SlotCache(model.args, placement.num_slots, placement.slot_tokens, dtype, device), mode, None
    if layout == "strided_slots":
        placement = fixed_slots(config, num_pages, max_seq_len)
        slot_len = placement.slot_tokens
    else:
        placement, slot_len = PageRuns(num_pages, config.page_size), 0
        if config.decode_attention == "auto" and device.type != "cuda":
            mode = "loop"  # gather-batched decode is slow on CPU (research 2.1); the slot layout is the CPU path
    wanted = config.decode_graphs == "on" or (config.decode_graphs == "auto" and device.type == "cuda")
    if config.decode_graphs == "on" and mode != "batched":
        raise ValueError("engine config error: decode_graphs 'on' needs batched decode attention "
                         f"(got decode_attention {config.decode_attention!r})")
    use_graphs = wanted and mode == "batched"
    pool = placement.pool_tokens
    # Graph rounds pad rows onto scratch past the pool: one position, or a whole slot (slot views need the stride).
    scratch = (slot_len or 1) if use_graphs else 0
    cache = RunCache(model.args, pool, dtype, device, scratch_tokens=scratch, slot_len=slot_len)
    graphs = DecodeGraphs(model, cache, pool, MIN_ROWS, capture=device.type == "cuda") if use_graphs else None
    return placement, cache, mode, graphs


class Engine:
    def __init__(self, model: LlamaModel, tokenizer, config: EngineConfig):
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
        self.num_pages = kv_cache_pages(config, model, self.max_seq_len, dtype, device)
        self.page_size = config.page_size
        self.block_manager, cache, mode, graphs = build_storage(config, self.model, self.num_pages, self.max_seq_len,
                                                                dtype, device)
        self.scheduler = Scheduler(self.block_manager, config.max_seqs, config.max_tokens_per_round)
        self.runner = Runner(self.model, cache, mode, graphs)
        self.stop_token_ids = default_stop_token_ids(tokenizer, model)
        self._closed = False

    @classmethod
    def from_model(cls, model: LlamaModel, tokenizer=None, config: EngineConfig | None = None) -> Engine:
        """An engine generating with `model`'s current weights: shared, or with `config.compute_dtype` a copy
        that is refreshed whenever they change (weights.py); either way updates are seen at the next step."""
        return cls(model, tokenizer, config or EngineConfig())

    @property
    def kv_cache_bytes(self) -> int:
        return self.runner.cache.num_bytes

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
