"""The inference engine: paged KV accounting, continuous batching, chunked prefill, per-request seeded sampling."""

from simpo_live.engine.engine import CapacityError, Engine, default_stop_token_ids
from simpo_live.engine.params import Completion, EngineConfig, Request, SamplingParams, StepResult

__all__ = ["CapacityError", "Completion", "Engine", "EngineConfig", "Request", "SamplingParams", "StepResult",
           "default_stop_token_ids"]
