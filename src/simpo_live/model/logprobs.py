"""Log p(target) from the lm_head a chunk of positions at a time, never holding an (N, vocab) logit matrix.

Forward runs lm_head + log-softmax + gather per chunk and keeps only the (N,) result; backward recomputes
each chunk's logits, differentiates the log-softmax with autograd and adds each chunk's lm_head gradient into
one (V, H) buffer in place, so peak memory is O(chunk x vocab) plus that one gradient. It does not pick positions or average per row: the caller (`LlamaModel.forward`) passes
the hidden states it selected and the lm_head weight it holds, so DDP and FSDP see the weight used inside
the wrapped forward and their gradient hooks fire as for a plain `nn.Linear`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Auto chunk size: a chunk's fp32 logits take about this many bytes (the log-softmax and its gradient add a
# few more of the same size); small next to a model's weights, large enough that a chunk is a big GEMM.
AUTO_CHUNK_LOGIT_BYTES = 64 << 20
MIN_CHUNK_TOKENS = 64


def auto_chunk_tokens(vocab_size: int) -> int:
    """Positions per chunk: AUTO_CHUNK_LOGIT_BYTES of fp32 logits, a multiple of MIN_CHUNK_TOKENS.

    Vocab 128,256 -> 128 positions (62.6 MiB of logits); vocab 4,096 -> 4,096 positions.
    """
    fit = AUTO_CHUNK_LOGIT_BYTES // (4 * vocab_size)
    return max(MIN_CHUNK_TOKENS, fit // MIN_CHUNK_TOKENS * MIN_CHUNK_TOKENS)


def resolve_chunk_tokens(setting: int | str, vocab_size: int) -> int:
    """`trainer.logprob_chunk_tokens` as a number: 'auto' -> auto_chunk_tokens(vocab_size); 0 stays 0 (off)."""
    return auto_chunk_tokens(vocab_size) if setting == "auto" else int(setting)


def _chunk_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The unchunked path's ops on one chunk: logits in the compute dtype, log-softmax in fp32, gather."""
    logits = F.linear(hidden, weight).float()  # (n, V)
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)  # (n,)


class ChunkedTokenLogps(torch.autograd.Function):
    """(hidden (N, H), weight (V, H), targets (N,), chunk_tokens) -> log p(targets) (N,) fp32."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk_tokens: int) -> torch.Tensor:
        # Autocast is active here as in the caller; remember it so backward recomputes in the same dtypes.
        device_type = hidden.device.type
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        ctx.chunk_tokens = chunk_tokens
        ctx.save_for_backward(hidden, weight, targets)
        pieces = [_chunk_logps(hidden[s:s + chunk_tokens], weight, targets[s:s + chunk_tokens])
                  for s in range(0, hidden.shape[0], chunk_tokens)]
        return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)  # (N,)

    @staticmethod
    def backward(ctx, grad_logps: torch.Tensor):
        hidden, weight, targets = ctx.saved_tensors
        device_type, autocast_enabled, autocast_dtype = ctx.autocast
        chunk = ctx.chunk_tokens
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None  # (N, H)
        grad_weight = None  # (V, H), summed over chunks in place: never a second (V, H) beside it
        weight_leaf = weight.detach().requires_grad_(want_weight)
        compute_weight = None  # the weight in the logits' dtype for the hidden gradient, cast once
        for s in range(0, hidden.shape[0], chunk):
            hidden_leaf = hidden[s:s + chunk].detach().requires_grad_(want_hidden)
            upstream = grad_logps[s:s + chunk]
            with torch.enable_grad(), torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_enabled):
                logits = F.linear(hidden_leaf, weight_leaf)  # (n, V), compute dtype
                logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[s:s + chunk, None]).squeeze(-1)
            if s == 0:
                # The first chunk goes through autograd like the unchunked path: one chunk is bitwise that path.
                inputs = [t for t in (hidden_leaf, weight_leaf) if t.requires_grad]
                grads = iter(torch.autograd.grad(logps, inputs, upstream))
                chunk_grad_hidden = next(grads) if want_hidden else None
                grad_weight = next(grads) if want_weight else None
                del grads
            else:
                (grad_logits,) = torch.autograd.grad(logps, logits, upstream)  # (n, V), compute dtype
                if want_hidden:
                    if compute_weight is None:
                        compute_weight = weight.detach().to(grad_logits.dtype)
                    chunk_grad_hidden = (grad_logits @ compute_weight).to(hidden.dtype)
                if want_weight:
                    accumulate_weight_grad(grad_weight, grad_logits, hidden_leaf.detach().to(grad_logits.dtype))
            if want_hidden:
                grad_hidden[s:s + chunk] = chunk_grad_hidden
        return grad_hidden, grad_weight, None, None


def accumulate_weight_grad(grad_weight: torch.Tensor, grad_logits: torch.Tensor, hidden: torch.Tensor) -> None:
    """grad_weight += grad_logits^T @ hidden, in place when the dtypes agree (no (V, H) temporary)."""
    if grad_logits.dtype == grad_weight.dtype:
        grad_weight.addmm_(grad_logits.t(), hidden)
    else:  # autocast: the product in the compute dtype, summed in the weight's
        grad_weight.add_(grad_logits.t() @ hidden)


def token_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int) -> torch.Tensor:
    """log p(targets[i] | hidden[i]) under the lm_head `weight`; (N,) fp32.

    chunk_tokens > 0: that many positions at a time (ChunkedTokenLogps); 0, or all positions within one chunk:
    all at once with plain autograd, which keeps the (N, V) log-softmax for backward instead of recomputing the
    logits (one chunk would hold as much in backward anyway).
    """
    if chunk_tokens <= 0 or hidden.shape[0] <= chunk_tokens:
        return _chunk_logps(hidden, weight, targets)
    return ChunkedTokenLogps.apply(hidden, weight, targets, chunk_tokens)
