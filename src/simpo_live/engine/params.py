"""The engine's public value types: its configuration, per-request sampling parameters, requests and completions.

Validation of user-supplied values happens here, at construction, with messages naming the field. Nothing in this
module touches tensors or decides what runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from simpo_live.config.rollout import (
    DEFAULT_HBM_UTILIZATION,
    DEFAULT_MAX_SEQS,
    DEFAULT_MAX_TOKENS_PER_ROUND,
    DEFAULT_PAGE_SIZE,
    MAX_HBM_UTILIZATION,
)

FinishReason = Literal["stop", "length"]


@dataclass
class EngineConfig:
    """Capacity knobs. The KV cache holds `max_pages` pages of `page_size` tokens; when `max_pages` is None it is
    sized to `hbm_utilization` of the free device memory (available RAM on CPU), capped at what `max_seqs`
    sequences of `max_seq_len` tokens could ever use."""

    max_seqs: int = DEFAULT_MAX_SEQS
    page_size: int = DEFAULT_PAGE_SIZE
    max_pages: int | None = None
    hbm_utilization: float = DEFAULT_HBM_UTILIZATION
    max_tokens_per_round: int = DEFAULT_MAX_TOKENS_PER_ROUND
    max_seq_len: int | None = None  # None: the model's max_position_embeddings
    device: str | torch.device | None = None  # None: the model's device
    dtype: torch.dtype | None = None  # KV cache dtype; None: the compute dtype
    # Dtype the engine computes in; None: the model's own. Otherwise it runs a copy of the weights in this dtype,
    # kept in sync with the model (weights.py). torch.bfloat16 on CPU: faster decode (GEMMs and the bf16
    # attention path; docs/decisions.md), outputs differ from fp32 in the last bits and so can differ in tokens; still
    # batch-invariant on CPU. Off by default so greedy outputs match an fp32 reference exactly.
    compute_dtype: torch.dtype | None = None
    # Fixed slots of max_seq_len positions either way (kv_cache.py). auto: slots on CPU, strided_slots on CUDA.
    # slots: chunk-major storage read by batched bmm (chunked_slots.py); strided_slots: a token-major pool,
    # decode attends over a strided view of it with no gather (strided_slots.py).
    kv_layout: Literal["auto", "slots", "strided_slots"] = "auto"
    # Decode-only rounds over bucketed static buffers, captured as CUDA graphs (decode_graph.py). auto: on CUDA
    # with kv_layout strided_slots; "on" also runs the bucketed path on CPU, uncaptured (tests).
    decode_graphs: Literal["auto", "on", "off"] = "auto"
    # Decode attention over strided slots. auto: the Triton kernel on CUDA (decode_kernel.py) once it agrees with
    # SDPA on this device, else the masked SDPA view (with a warning); sdpa: always the view; triton: the kernel,
    # and an error where it cannot run.
    decode_attention: Literal["auto", "sdpa", "triton"] = "auto"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: how the eval hands its whole configuration to a `simpo-live sample` child."""
        values = asdict(self)
        for name in ("dtype", "compute_dtype"):
            values[name] = None if values[name] is None else str(values[name]).removeprefix("torch.")
        values["device"] = None if self.device is None else str(self.device)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EngineConfig:
        values = dict(values)
        for name in ("dtype", "compute_dtype"):
            if values.get(name) is not None:
                values[name] = getattr(torch, values[name])
        return cls(**values)

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_seqs", "page_size", "max_tokens_per_round"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.max_pages is not None and self.max_pages < 1:
            problems.append(f"max_pages must be >= 1 or None (got {self.max_pages})")
        if self.max_seq_len is not None and self.max_seq_len < 2:
            problems.append(f"max_seq_len must be >= 2 or None (got {self.max_seq_len})")
        if not 0.0 < self.hbm_utilization <= MAX_HBM_UTILIZATION:
            problems.append(f"hbm_utilization must be in (0, {MAX_HBM_UTILIZATION}] (got {self.hbm_utilization})")
        if self.kv_layout not in ("auto", "slots", "strided_slots"):
            problems.append(f"kv_layout must be auto, slots or strided_slots (got {self.kv_layout!r})")
        if self.decode_graphs not in ("auto", "on", "off"):
            problems.append(f"decode_graphs must be auto, on or off (got {self.decode_graphs!r})")
        if self.decode_attention not in ("auto", "sdpa", "triton"):
            problems.append(f"decode_attention must be auto, sdpa or triton (got {self.decode_attention!r})")
        if problems:
            raise ValueError("engine config error: " + "; ".join(problems))


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one request. temperature 0 is greedy; top_k 0 and top_p 1 disable those cut-offs.

    `seed` fixes the noise: sample j of a request draws its uniforms from (derived seed(seed, j), output position)
    only, so its text does not depend on batch-mates, batch size, order, page size or host. `stop_token_ids` are
    added to the engine's defaults (EOS + the chat template's end-of-turn); `ignore_eos` drops those defaults but
    keeps explicitly given stop ids. `logprobs` returns each sampled token's log-probability under the model's
    unscaled distribution.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    seed: int = 0
    stop_token_ids: tuple[int, ...] | None = None
    ignore_eos: bool = False
    n: int = 1
    logprobs: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (got {self.temperature})")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0 (got {self.top_k})")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1 (got {self.max_new_tokens})")
        if self.n < 1:
            problems.append(f"n must be >= 1 (got {self.n})")
        if problems:
            raise ValueError("sampling params error: " + "; ".join(problems))
        if self.stop_token_ids is not None:
            object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Request:
    """One prompt (token ids) to complete `params.n` times."""

    request_id: str | int
    prompt_token_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class Completion:
    """One finished sample. `token_ids` includes the stop token when `finish_reason` is "stop"."""

    request_id: str | int
    sample_index: int
    prompt_token_count: int
    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    seed: int
    logprobs: list[float] | None = None


@dataclass(frozen=True)
class StepResult:
    """What one engine step produced: the samples that finished and how many tokens were generated."""

    finished: list[Completion]
    num_generated_tokens: int
    num_prompt_tokens: int
