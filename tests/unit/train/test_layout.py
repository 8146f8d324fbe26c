"""The packed-or-padded rule by device and compute dtype (train/layout.py); CUDA devices are only descriptors here."""

from __future__ import annotations

import pytest
import torch

import simpo_live.train.layout as layout
from simpo_live.train.layout import choose_layout

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("requested", ["auto", True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_packs_in_any_dtype(requested, dtype):
    assert choose_layout(requested, CPU, dtype) == layout.LayoutChoice(True)


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_packing_false_is_always_padded(device):
    assert choose_layout(False, device, torch.bfloat16) == layout.LayoutChoice(False)


def test_cuda_bf16_packs_through_the_varlen_kernel():
    assert layout.causal_varlen() is not None  # this torch has one
    assert choose_layout("auto", CUDA, torch.bfloat16).packed
    assert choose_layout(True, CUDA, torch.float16) == layout.LayoutChoice(True)


def test_cuda_fp32_auto_is_padded_quietly_and_true_says_so():
    assert choose_layout("auto", CUDA, torch.float32) == layout.LayoutChoice(False)
    choice = choose_layout(True, CUDA, torch.float32)
    assert not choice.packed
    assert "trainer.packing: true" in choice.warning and "float32" in choice.warning
    assert "\n" not in choice.warning


def test_a_torch_without_varlen_trains_padded_with_one_warning(monkeypatch):
    monkeypatch.setattr(layout, "causal_varlen", lambda: None)
    assert choose_layout("auto", CUDA, torch.bfloat16) == layout.LayoutChoice(False)
    choice = choose_layout(True, CUDA, torch.bfloat16)
    assert not choice.packed and "varlen_attn" in choice.warning and torch.__version__ in choice.warning
