"""The weights the engine computes with: the caller's model itself, or a copy in `EngineConfig.compute_dtype`.

On CPU, bf16 GEMMs run faster than fp32 for this project's shapes (docs/decisions.md) and bf16 decode attention
reads half the bytes (chunked_slots.py), so a training run in
fp32 may still want to sample in bf16. The copy is the same model class (`LlamaModel`), built on the meta device
(no second fp32 copy) with its RoPE frequencies recomputed in fp32 (a bf16 `inv_freq` would bend long positions).

"The engine sees weight updates" is kept: before every step `sync()` compares each source parameter's identity,
storage pointer and in-place version counter with the last copy and re-copies when any changed (an optimizer
step, `load_state_dict`, `param.copy_`). An update through `param.data` does not bump the version counter, so
`Engine.generate` also forces a re-copy at its start (~ms for small models; one cast pass over the weights).
"""

from __future__ import annotations

import torch

from simpo_live.model.llama import LlamaModel


class ComputeWeights:
    def __init__(self, model: LlamaModel, dtype: torch.dtype | None):
        self.source = model
        source_dtype = model.lm_head.weight.dtype
        self.is_copy = dtype is not None and dtype != source_dtype
        if not self.is_copy:
            self.model = model
            return
        with torch.device("meta"):
            shadow = LlamaModel(model.args)
        shadow = shadow.to_empty(device=model.lm_head.weight.device).to(dtype).eval().requires_grad_(False)
        shadow.reset_rope_buffers()  # fp32 inv_freq, recomputed on the model's device
        self.model = shadow
        self._key: tuple | None = None
        self.sync(force=True)

    def _source_key(self, params: list[torch.Tensor]) -> tuple:
        return tuple((id(p), p.data_ptr(), p._version) for p in params)

    @torch.no_grad()
    def sync(self, force: bool = False) -> None:
        """Re-copy the source's parameters into the compute copy if they changed (or when `force`)."""
        if not self.is_copy:
            return
        params = list(self.source.parameters())
        key = self._source_key(params)
        if not force and key == self._key:
            return
        for target, param in zip(self.model.parameters(), params, strict=True):
            target.copy_(param)
        self._key = key
