"""Model FLOPs of a training micro-batch and the device's peak FLOP/s: the MFU estimate's two halves.

Model FLOPs count the useful work of forward + backward (3x the forward's multiply-adds x 2), not padding, not
recomputation under activation checkpointing: 6 x the decoder's matmul weights per real token, 6 x hidden x
vocab per scored position (the lm_head runs only there), and causal attention's two matmuls, 6 x heads x
head_dim x s(s+1) per sequence of s tokens and layer. The peak is the device's dense datasheet figure for the
compute dtype, or `trainer.peak_flops`; a CPU has no entry, so its MFU is absent unless configured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simpo_live.model.args import ModelArgs

# (device-name substring, dense bf16 tensor-core FLOP/s, fp32 FLOP/s), from NVIDIA datasheets, no sparsity.
# Checked in order: longer names first where one contains another.
PEAK_FLOPS_TABLE = (
    ("H200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51e12),
    ("H100", 989e12, 67e12),
    ("A100", 312e12, 19.5e12),
    ("L40S", 362e12, 91.6e12),
    ("L4", 121e12, 30.3e12),
)


@dataclass(frozen=True)
class ModelFlops:
    per_token: float
    """Decoder matmul weights x 6."""
    per_scored_position: float
    """lm_head weights x 6."""
    attention_per_square: float
    """Multiplies s(s+1) for a sequence of s tokens: 6 x layers x query heads x head_dim."""

    @classmethod
    def of(cls, args: ModelArgs) -> ModelFlops:
        h, d = args.hidden_size, args.head_dim
        attention_weights = h * d * (2 * args.num_attention_heads + 2 * args.num_key_value_heads)
        mlp_weights = 3 * h * args.intermediate_size
        return cls(per_token=6.0 * args.num_hidden_layers * (attention_weights + mlp_weights),
                   per_scored_position=6.0 * h * args.vocab_size,
                   attention_per_square=6.0 * args.num_hidden_layers * args.num_attention_heads * d)

    def of_sequences(self, lengths: list[int], num_scored: int) -> float:
        """FLOPs of forward + backward over sequences of these lengths, `num_scored` positions through the head."""
        return (self.per_token * sum(lengths) + self.per_scored_position * num_scored
                + self.attention_per_square * sum(s * (s + 1) for s in lengths))


def device_peak_flops(device: torch.device, compute_dtype: torch.dtype, configured: float | None) -> float | None:
    """Peak FLOP/s of one device in `compute_dtype`: `configured` if given, else the table's entry for a known
    CUDA device; None when unknown (a CPU, an unlisted GPU)."""
    if configured is not None:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, bf16, fp32 in PEAK_FLOPS_TABLE:
        if key in name:
            return bf16 if compute_dtype in (torch.bfloat16, torch.float16) else fp32
    return None
