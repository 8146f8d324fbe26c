"""The Llama-family decoder (Llama 2/3, Qwen2, Mistral): RMSNorm, RoPE, SwiGLU, grouped-query attention.

Module names mirror Hugging Face's so checkpoints map one to one. Training calls
`model(input_ids, positions)` and gets causal attention over each (right-padded) row, or passes a
`PackedAttention` for packed rows; the inference engine passes an `AttentionBackend` that owns the KV cache.
There is no second model class.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from simpo_live.model.args import ModelArgs
from simpo_live.model.logprobs import token_logps
from simpo_live.model.rope import apply_rope, rope_cos_sin, rope_inverse_frequencies


class AttentionBackend(Protocol):
    """Attention for one forward pass: over the inference engine's KV cache, or within each sequence of a packed
    training row (model/packed_attention.py)."""

    def __call__(self, layer_index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, S, Hq, D), k and v (B, S, Hkv, D) for the new tokens, RoPE applied; returns (B, S, Hq, D)."""
        ...


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 as the reference implementations do; bf16 variance loses too much.
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, layer_index: int):
        super().__init__()
        self.layer_index = layer_index
        self.num_heads = args.num_attention_heads
        self.num_kv_heads = args.num_key_value_heads
        self.head_dim = args.head_dim
        qkv_bias = args.attention_bias or args.model_type == "qwen2"
        out_bias = args.attention_bias and args.model_type != "qwen2"
        self.q_proj = nn.Linear(args.hidden_size, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(args.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(args.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, args.hidden_size, bias=out_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                backend: AttentionBackend | None) -> torch.Tensor:
        batch, seq, _ = x.shape
        q = self.q_proj(x).view(batch, seq, self.num_heads, self.head_dim)  # (B, S, Hq, D)
        k = self.k_proj(x).view(batch, seq, self.num_kv_heads, self.head_dim)  # (B, S, Hkv, D)
        v = self.v_proj(x).view(batch, seq, self.num_kv_heads, self.head_dim)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if backend is None:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads,
            ).transpose(1, 2)  # (B, S, Hq, D)
        else:
            out = backend(self.layer_index, q, k, v)
        return self.o_proj(out.reshape(batch, seq, self.num_heads * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.up_proj = nn.Linear(args.hidden_size, args.intermediate_size, bias=False)
        self.down_proj = nn.Linear(args.intermediate_size, args.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, args: ModelArgs, layer_index: int):
        super().__init__()
        self.self_attn = Attention(args, layer_index)
        self.mlp = SwiGLU(args)
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.checkpoint_activations = False  # set by LlamaModel.set_activation_checkpointing

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                backend: AttentionBackend | None) -> torch.Tensor:
        if self.checkpoint_activations and torch.is_grad_enabled():
            # Inside forward, so an FSDP wrapper of this layer unshards before and reshards after, outside the
            # recomputed region (as fully_shard(checkpoint_wrapper(layer)) would); non-reentrant, so gradients
            # reach parameters and inputs as without checkpointing and DDP's hooks fire once.
            return checkpoint(self.compute, x, cos, sin, backend, use_reentrant=False)
        return self.compute(x, cos, sin, backend)

    def compute(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                backend: AttentionBackend | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, backend)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderStack(nn.Module):
    """Embeddings, layers and final norm: HF's `model.` prefix."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(args, i) for i in range(args.num_hidden_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)


class LlamaModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = DecoderStack(args)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        if args.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.register_buffer(
            "inv_freq", rope_inverse_frequencies(args.head_dim, args.rope_theta, args.rope_scaling), persistent=False
        )

    def hidden_states(self, input_ids: torch.Tensor, positions: torch.Tensor,
                      attention: AttentionBackend | None = None) -> torch.Tensor:
        """Final-normed hidden states (B, S, hidden) for input_ids and positions, both (B, S)."""
        x = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(positions, self.inv_freq, x.dtype)  # (B, S, D) each
        for layer in self.model.layers:
            x = layer(x, cos, sin, attention)
        return self.model.norm(x)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                attention: AttentionBackend | None = None,
                logits_at: tuple[torch.Tensor, torch.Tensor] | None = None,
                target_ids: torch.Tensor | None = None, logprob_chunk_tokens: int = 0) -> torch.Tensor:
        """Logits (B, S, vocab), or (N, vocab) at the (row, column) index pairs `logits_at` only.

        Without `attention`, each row attends causally to itself (pad on the right). `logits_at` keeps the
        lm_head off positions nobody needs, and inside forward so DDP/FSDP wrappers see all the compute.
        With `target_ids` (N,) it returns log p(target_ids) (N,) fp32 instead, `logprob_chunk_tokens` positions
        at a time (model/logprobs.py; 0: all at once), so the (N, vocab) logits need never exist.
        """
        if positions is None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        hidden = self.hidden_states(input_ids, positions, attention)  # (B, S, H)
        if logits_at is not None:
            hidden = hidden[logits_at[0], logits_at[1]]  # (N, H)
        if target_ids is not None:
            # The weight is read here, inside the wrapped forward: FSDP has unsharded it, DDP's reducer sees it.
            return token_logps(hidden, self.lm_head.weight, target_ids, logprob_chunk_tokens)
        return self.lm_head(hidden)

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Keep only each decoder layer's input for backward and recompute the rest (training only)."""
        for layer in self.model.layers:
            layer.checkpoint_activations = enabled

    def reset_rope_buffers(self) -> None:
        """Recompute non-persistent buffers, e.g. after building the model on the meta device."""
        args = self.args
        device = self.lm_head.weight.device
        self.inv_freq = rope_inverse_frequencies(args.head_dim, args.rope_theta, args.rope_scaling).to(
            "cpu" if device.type == "meta" else device
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
