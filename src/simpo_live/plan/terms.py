"""Bytes per rank of each memory term of a training run, from the model shape and the knobs alone.

Pure arithmetic: no tensors, no device. The activation formulas count what this codebase's decoder layer
saves for backward (listed in `layer_activation_bytes_per_token`), so they follow the code, not a rule of
thumb; tests check them against autograd's saved tensors and against measured peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from simpo_live.engine.capacity import kv_bytes_per_token
from simpo_live.model.args import ModelArgs

# Peak fp32 bytes per logit in the unchunked log-prob backward: the log-softmax output saved by forward (the
# logits themselves are not saved), the gather's zero-filled gradient and the log-softmax gradient, 4 bytes each.
# A bf16 lm_head adds its logits' bf16 gradient (2 bytes, counted in `logit_bytes`).
LOGIT_BACKWARD_BYTES = 12
# The chunked backward holds one more per logit of its chunk: the recomputed logits, which it differentiates.
CHUNK_BACKWARD_BYTES = 16


@dataclass(frozen=True)
class PlanInputs:
    """Everything the plan depends on; sizes in elements or tokens, dtypes as element sizes in bytes."""

    args: ModelArgs
    world_size: int
    sharded: bool  # FSDP2: parameters, gradients and optimizer state divided over the ranks
    param_bytes: int  # stored (and optimizer-state) element size of the trained weights
    compute_bytes: int  # element size of matmul activations: bf16 under autocast or FSDP bf16, else param_bytes
    autocast: bool  # fp32 weights cast per forward (autocast keeps bf16 copies of every weight until backward)
    rows: int  # rows of the longest micro-batch: 2 x micro-batch pairs (chosen and rejected)
    seq_len: int  # padded length of those rows
    response_tokens: int  # positions scored by the lm_head in that micro-batch
    logprob_chunk_tokens: int  # 0: all at once
    activation_checkpointing: bool
    eval_replica_bytes: int = 0  # element size of the eval's separate replica; 0: the engine uses the live module
    kv_cache_tokens: int = 0  # tokens the eval's KV cache holds with every sequence decoding at once
    kv_min_tokens: int = 0  # the longest single request: less and the eval cannot run at all
    kv_fraction: float | None = None  # hbm_utilization: the engine takes this share of what is free; None: fixed
    kv_dtype: torch.dtype = torch.bfloat16
    reward_model_bytes: int = 0  # a reward model resident during the eval (inference_eval.reward_model)
    lora_rank: int = 0  # LoRA adapters of this rank train (fp32) on a frozen base of param_bytes; 0: every weight
    lora_targets: tuple[str, ...] = ()  # the projections of each layer with an adapter
    lora_dropout: bool = False  # dropout on the adapters' input (it keeps its own mask and output)
    lora_copy_bytes: int = 4  # element size of an adapter's own input copy (bf16 activations): fp32, bf16 under autocast

    def with_knob(self, **changes) -> PlanInputs:
        return replace(self, **changes)


def layer_parameters(args: ModelArgs) -> int:
    q, kv = args.num_attention_heads * args.head_dim, args.num_key_value_heads * args.head_dim
    attention = args.hidden_size * (q + 2 * kv) + q * args.hidden_size
    if args.attention_bias or args.model_type == "qwen2":
        attention += q + 2 * kv
    return attention + 3 * args.hidden_size * args.intermediate_size + 2 * args.hidden_size


def root_parameters(args: ModelArgs) -> int:
    """Embeddings, final norm and (untied) lm_head: the FSDP root unit."""
    head = 0 if args.tie_word_embeddings else args.vocab_size * args.hidden_size
    return args.vocab_size * args.hidden_size + args.hidden_size + head


def num_parameters(args: ModelArgs) -> int:
    return args.num_hidden_layers * layer_parameters(args) + root_parameters(args)


def layer_activation_bytes_per_token(args: ModelArgs, residual_bytes: int, compute_bytes: int,
                                     autocast: bool) -> int:
    """What one decoder layer saves for backward, per token (weights excluded: they are parameters).

    Each RMSNorm: its input (residual dtype), the fp32 normalised values and the fp32 rsqrt; its output as the
    matmuls read it: once in the compute dtype, or under autocast one bf16 cast per consuming projection (q, k, v
    after the first norm; gate, up after the second). Attention: q, k, v and the output (compute dtype), an fp32
    log-sum-exp per head. SwiGLU: gate output, its SiLU, up output, their product. RoPE tables are shared.
    """
    hidden, inter = args.hidden_size, args.intermediate_size
    q, kv = args.num_attention_heads * args.head_dim, args.num_key_value_heads * args.head_dim
    norm_output_copies = 5 if autocast else 2
    norms = 2 * hidden * (residual_bytes + 4) + 2 * 4 + norm_output_copies * hidden * compute_bytes
    attention = compute_bytes * (2 * q + 2 * kv) + 4 * args.num_attention_heads
    mlp = 4 * inter * compute_bytes
    return norms + attention + mlp


def projection_inputs(args: ModelArgs) -> dict[str, int]:
    """Input features of each decoder-layer projection; output features are `projection_outputs`."""
    hidden, q = args.hidden_size, args.num_attention_heads * args.head_dim
    return {"q_proj": hidden, "k_proj": hidden, "v_proj": hidden, "o_proj": q, "gate_proj": hidden,
            "up_proj": hidden, "down_proj": args.intermediate_size}


def projection_outputs(args: ModelArgs) -> dict[str, int]:
    hidden, q, kv = args.hidden_size, args.num_attention_heads * args.head_dim, args.num_key_value_heads * args.head_dim
    return {"q_proj": q, "k_proj": kv, "v_proj": kv, "o_proj": hidden, "gate_proj": args.intermediate_size,
            "up_proj": args.intermediate_size, "down_proj": hidden}


def adapter_parameters(args: ModelArgs, rank: int, targets: tuple[str, ...]) -> int:
    """LoRA's A (rank x in) and B (out x rank) of every targeted projection of every layer."""
    ins, outs = projection_inputs(args), projection_outputs(args)
    return args.num_hidden_layers * sum(rank * (ins[t] + outs[t]) for t in targets)


def lora_layer_activation_bytes_per_token(args: ModelArgs, residual_bytes: int, compute_bytes: int, autocast: bool,
                                          rank: int, targets: tuple[str, ...], dropout: bool,
                                          copy_bytes: int = 4) -> int:
    """What one decoder layer saves for backward with LoRA adapters on a frozen base, per token.

    The full fine-tuning layer, less what only weight gradients needed: each frozen norm's normalised input, and
    the inputs of the projections (the first norm's output, the second's, the SwiGLU product; attention's output
    is attention's own). Each adapter then keeps A's output (rank, fp32) and an input: the tensor its projection
    reads, once per group of projections reading it (fp32 weights and activations), or its own copy of `copy_bytes`
    (peft casts bf16 activations to the adapters' fp32; autocast casts that back to bf16), or with dropout the
    dropout's fp32 noise and output. With fp32 weights under autocast the layer keeps its casts as in full
    fine-tuning: counted so, an upper bound (~5% over, measured).
    """
    hidden, inter = args.hidden_size, args.intermediate_size
    full = layer_activation_bytes_per_token(args, residual_bytes, compute_bytes, autocast)
    kept = full - 2 * hidden * compute_bytes + len(targets) * rank * 4
    if autocast and not dropout:
        return kept
    kept -= (2 * hidden + inter) * compute_bytes
    ins = projection_inputs(args)
    if dropout:
        return kept + sum(8 * ins[t] for t in targets)
    if compute_bytes != 4:
        return kept + sum(copy_bytes * ins[t] for t in targets)
    groups = [({"q_proj", "k_proj", "v_proj"}, hidden), ({"gate_proj", "up_proj"}, hidden), ({"down_proj"}, inter)]
    return kept + sum(size * compute_bytes for names, size in groups if names & set(targets))


def layer_activation_bytes(p: PlanInputs) -> int:
    """One decoder layer's saved tensors at the longest micro-batch."""
    if p.lora_rank:
        per_token = lora_layer_activation_bytes_per_token(p.args, residual_bytes(p), p.compute_bytes, p.autocast,
                                                          p.lora_rank, p.lora_targets, p.lora_dropout,
                                                          p.lora_copy_bytes)
    else:
        per_token = layer_activation_bytes_per_token(p.args, residual_bytes(p), p.compute_bytes, p.autocast)
    return per_token * p.rows * p.seq_len


def residual_bytes(p: PlanInputs) -> int:
    return p.compute_bytes if p.sharded and p.compute_bytes < p.param_bytes else p.param_bytes


def activation_bytes(p: PlanInputs) -> int:
    """Saved activations of the longest micro-batch at the start of backward: every layer's (or, checkpointed,
    only every layer's input) and the final norm's."""
    tokens, residual = p.rows * p.seq_len, residual_bytes(p)
    if p.activation_checkpointing:
        kept = p.args.num_hidden_layers * tokens * p.args.hidden_size * residual
    else:
        kept = p.args.num_hidden_layers * layer_activation_bytes(p)
    return kept + tokens * p.args.hidden_size * (residual + 4 + p.compute_bytes)


def logit_bytes(p: PlanInputs) -> int:
    """The lm_head + log-softmax working set: every scored position at once, or one chunk at a time; plus the
    lm_head weight's gradient before it is accumulated into `.grad` (none for LoRA's frozen head)."""
    vocab, head = p.args.vocab_size, 0 if p.lora_rank else p.args.vocab_size * p.args.hidden_size
    # The head's gradient in the dtype of the weight the lm_head used (bf16 when FSDP gathers in bf16).
    weight_bytes = p.compute_bytes if p.sharded else p.param_bytes
    low_precision_logits = 2 if p.compute_bytes == 2 else 0
    if p.logprob_chunk_tokens <= 0 or p.response_tokens <= p.logprob_chunk_tokens:  # one pass, no recompute
        return p.response_tokens * vocab * (LOGIT_BACKWARD_BYTES + low_precision_logits) + head * weight_bytes
    chunk = min(p.logprob_chunk_tokens, p.response_tokens)
    # Chunks after the first add their head gradient in place; under autocast through a compute-dtype product.
    product = head * p.compute_bytes if p.compute_bytes != weight_bytes else 0
    return chunk * vocab * (CHUNK_BACKWARD_BYTES + low_precision_logits) + head * weight_bytes + product


def kv_cache_bytes(p: PlanInputs, other_eval_bytes: int, device_bytes: int) -> int:
    """The engine's cache: a fixed size (max_pages), or its share of the memory left beside the eval's other terms,
    never more than full concurrency needs and never less than one longest request (below that it cannot run)."""
    per_token = kv_bytes_per_token(p.args, p.kv_dtype)
    if p.kv_fraction is None:
        return p.kv_cache_tokens * per_token
    share = int(max(0, device_bytes - other_eval_bytes) * p.kv_fraction)
    return max(p.kv_min_tokens * per_token, min(p.kv_cache_tokens * per_token, share))


def plan_terms(p: PlanInputs, device_bytes: int) -> list[tuple[str, str, int]]:
    """(term, phase, bytes per rank); phase is 'train' (forward/backward), 'eval' (the inference eval) or 'both'."""
    args = p.args
    total = num_parameters(args)
    shard = p.world_size if p.sharded else 1
    params = total * p.param_bytes // shard
    if p.lora_rank:  # the base is frozen: only the fp32 adapters have gradients and AdamW moments
        trained = adapter_parameters(args, p.lora_rank, p.lora_targets) * 4 // shard
        terms = [("frozen base weights", "both", params), ("adapter weights (LoRA, fp32)", "both", trained)]
    else:
        trained = params
        terms = [("parameters", "both", params)]
    terms.append(("optimizer state (AdamW moments)", "both", 2 * trained))
    # DDP reduces through buckets that copy the gradients once more.
    grads = trained * (2 if p.world_size > 1 and not p.sharded else 1)
    terms.append(("gradients", "train", grads))
    if p.sharded:
        # The root unit stays gathered through forward; a layer and the prefetched next one are gathered too.
        gathered = (root_parameters(args) + 2 * layer_parameters(args)) * p.compute_bytes
        terms.append(("FSDP gathered units", "train", gathered))
    if p.autocast:  # every matmul weight: the layers' and the lm_head
        copies = args.num_hidden_layers * layer_parameters(args) + args.vocab_size * args.hidden_size
        terms.append(("autocast weight copies", "train", copies * p.compute_bytes))
    terms.append(("activations", "train", activation_bytes(p)))
    logits = logit_bytes(p)
    terms.append(("logits", "train", logits))
    # Backward first runs the log-prob working set, then one layer at a time (its recomputation under
    # checkpointing, or its gradients): the two never coexist, so only the excess of the larger counts.
    terms.append(("layer backward, beyond logits", "train", max(0, layer_activation_bytes(p) - logits)))
    if p.eval_replica_bytes:
        terms.append(("eval replica", "eval", total * p.eval_replica_bytes))
    terms.append(("reward model", "eval", p.reward_model_bytes))
    other_eval = sum(b for _, phase, b in terms if phase in ("eval", "both"))
    terms.append(("KV cache", "eval", kv_cache_bytes(p, other_eval, device_bytes)))
    return terms
