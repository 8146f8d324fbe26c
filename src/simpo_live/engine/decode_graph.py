"""Decode-only rounds on CUDA as replayed CUDA graphs.

An eager decode round on CUDA is bound by kernel launches, not memory (figures in docs/decisions.md). A
decode-only round (no prompt chunk in it; the steady state of an eval) is therefore run over static buffers sized
by bucket, padded rows to the next power of two (at least runner.MIN_ROWS) and contexts to the next multiple of
CONTEXT_BUCKET, and on CUDA the forward for each (rows, context) bucket is captured into a graph once the bucket
has run CAPTURE_AFTER_USES times eagerly, then replayed: a capture costs a few forwards, which a bucket used a handful
of times (short evals, the tail of a long one) never earns back. The cache plans the bucket's attention from the static tensors (`plan_bucket`); padded rows write to and
read from its scratch handle, which no sequence owns; padded keys are masked.

Graphs belong to one Engine: they hold the addresses of its KV cache and of the weights it computes with. Weight
updates in place (optimizer steps, `ComputeWeights.sync`) are seen; parameters replaced by new tensors are not,
which cannot happen within an eval (the engine lives for one).

`capture=False` runs the very same bucketed forward eagerly: on CPU that is what the tests exercise (its outputs
equal the unbucketed path's bitwise there), so only the capture itself is left to a GPU run.
"""

from __future__ import annotations

import torch

from simpo_live.engine.attention import KVCache, StepAttention
from simpo_live.intmath import round_up
from simpo_live.model.llama import LlamaModel

CONTEXT_BUCKET = 256  # context padding granule: W2 (contexts up to 576) needs 3 context buckets per row bucket
CAPTURE_AFTER_USES = 8  # eager runs of a bucket before it is captured (a capture is 2 warm-up forwards + 1 recorded)


def bucket_rows(rows: int, min_rows: int) -> int:
    size = min_rows
    while size < rows:
        size *= 2
    return size


class BucketForward:
    """Static inputs and the logits of one (rows, context) bucket; `__call__` runs the forward over them."""

    def __init__(self, model: LlamaModel, cache: KVCache, rows: int, context: int):
        device = model.lm_head.weight.device
        self.model, self.cache, self.rows, self.context = model, cache, rows, context
        self.scratch = cache.scratch_handle
        self.token_ids = torch.zeros(1, rows, dtype=torch.long, device=device)
        self.positions = torch.zeros(1, rows, dtype=torch.long, device=device)
        self.handles = torch.full((rows,), self.scratch, dtype=torch.long, device=device)
        self.lengths = torch.ones(rows, dtype=torch.long, device=device)
        self.logits: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.num_uses = 0

    def load(self, token_ids: list[int], positions: list[int], spans: list[tuple[int, int]]) -> None:
        """Copy one round's rows into the static inputs (one host-to-device copy); padded rows point at scratch."""
        pad = self.rows - len(token_ids)
        host = torch.tensor([token_ids + [0] * pad, positions + [0] * pad,
                             [s for s, _ in spans] + [self.scratch] * pad, [n for _, n in spans] + [1] * pad])
        host = host.to(self.token_ids.device, non_blocking=True)
        self.token_ids[0].copy_(host[0])
        self.positions[0].copy_(host[1])
        self.handles.copy_(host[2])
        self.lengths.copy_(host[3])

    def __call__(self) -> torch.Tensor:
        plan = self.cache.plan_bucket(self.handles, self.lengths, self.context)
        hidden = self.model.hidden_states(self.token_ids, self.positions, StepAttention(self.cache, plan, []))
        self.logits = self.model.lm_head(hidden[0]).float()
        return self.logits

    def capture(self, pool, stream: torch.cuda.Stream) -> None:
        """Record the forward into a CUDA graph (after warm-up runs on a side stream, as CUDA graphs require).
        The inputs must already hold the current round: warm-up writes its keys and values, as replay will."""
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self()


class DecodeGraphs:
    """The bucketed decode forward of one engine, captured per bucket on first use when `capture`."""

    def __init__(self, model: LlamaModel, cache: KVCache, min_rows: int, capture: bool):
        self.model, self.cache, self.min_rows = model, cache, min_rows
        self.capture = capture
        self.pool = torch.cuda.graph_pool_handle() if capture else None
        # One side stream for every warm-up and capture: cuBLAS keeps a workspace per stream it has run on.
        self.stream = torch.cuda.Stream() if capture else None
        self.buckets: dict[tuple[int, int], BucketForward] = {}

    def close(self) -> None:
        """Drop the graphs (their memory pool goes with them) and the cuBLAS workspaces their streams made, so an
        eval leaves allocated memory where it found it."""
        captured = any(forward.graph is not None for forward in self.buckets.values())
        self.buckets.clear()
        if captured and hasattr(torch._C, "_cuda_clearCublasWorkspaces"):
            torch.cuda.synchronize()
            torch._C._cuda_clearCublasWorkspaces()

    def logits(self, token_ids: list[int], positions: list[int], spans: list[tuple[int, int]]) -> torch.Tensor:
        """Logits (B, vocab) of a decode-only round: row i is token_ids[i] at positions[i], its sequence's
        context is spans[i] = (cache handle, length incl. this token)."""
        rows = bucket_rows(len(token_ids), self.min_rows)
        context = round_up(max(n for _, n in spans), CONTEXT_BUCKET)
        key = (rows, context)
        forward = self.buckets.get(key)
        if forward is None:
            forward = self.buckets[key] = BucketForward(self.model, self.cache, rows, context)
        forward.load(token_ids, positions, spans)
        forward.num_uses += 1
        if self.capture and forward.graph is None and forward.num_uses >= CAPTURE_AFTER_USES:
            forward.capture(self.pool, self.stream)
        if forward.graph is not None:
            forward.graph.replay()
        else:
            forward()
        return forward.logits[:len(token_ids)]
