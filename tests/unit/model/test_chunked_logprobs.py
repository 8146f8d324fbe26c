"""Chunked response log-probs equal the unchunked reference (lm_head logits -> log-softmax -> gather), in the
losses and in every gradient, and keep no (N, vocab) tensor for backward."""

import pytest
import torch

from simpo_live.model.logprobs import auto_chunk_tokens, resolve_chunk_tokens, token_logps
from simpo_live.train.logps import response_avg_logps
from tiny_training import VOCAB, loss_and_grads, pair_batch, reference_avg_logps, saved_bytes, tiny_model

@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("chunk", [1, 5, 16, 10_000])
def test_chunked_losses_and_gradients_equal_the_unchunked_path(tied, chunk):
    model, batch = tiny_model(tied), pair_batch()
    num_response_positions = int(batch.response_mask[:, 1:].sum())
    assert num_response_positions > 16  # chunks 1, 5 and 16 really split the positions
    ref_loss, ref_grads = loss_and_grads(model, lambda: reference_avg_logps(model, batch))
    loss, grads = loss_and_grads(model, lambda: response_avg_logps(model, batch, chunk))
    assert abs(loss.item() - ref_loss.item()) <= 1e-6
    assert sorted(grads) == sorted(ref_grads)
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name  # every parameter, the head and (tied) embeddings included, learns
        torch.testing.assert_close(grad, ref_grads[name], rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_one_chunk_is_bitwise_the_unchunked_path():
    """The default preset's vocab fits one auto chunk: its pinned losses must not move by a bit."""
    model, batch = tiny_model(tied=True), pair_batch()
    ref_loss, ref_grads = loss_and_grads(model, lambda: reference_avg_logps(model, batch))
    loss, grads = loss_and_grads(model, lambda: response_avg_logps(model, batch, 10_000))
    assert torch.equal(loss, ref_loss)
    assert all(torch.equal(grads[n], ref_grads[n]) for n in grads)


def test_chunked_gradients_match_under_bf16_autocast():
    model, batch = tiny_model(tied=False), pair_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_loss, ref_grads = loss_and_grads(model, lambda: reference_avg_logps(model, batch))
        loss, grads = loss_and_grads(model, lambda: response_avg_logps(model, batch, 4))
    assert abs(loss.item() - ref_loss.item()) <= 1e-6  # per-chunk ops are the same bf16 GEMMs + fp32 softmax
    for name, grad in grads.items():
        # bf16 grads of the logits summed in another order: a few bf16 ulps of the largest entries
        torch.testing.assert_close(grad, ref_grads[name], rtol=2e-2, atol=1e-3, msg=lambda m: f"{name}: {m}")


def test_hidden_states_get_their_gradient():
    torch.manual_seed(0)
    hidden = torch.randn(13, 8, requires_grad=True)
    weight = torch.randn(VOCAB, 8, requires_grad=True)
    targets = torch.randint(0, VOCAB, (13,))
    upstream = torch.randn(13)
    expected = torch.autograd.grad((token_logps(hidden, weight, targets, 0) * upstream).sum(), (hidden, weight))
    actual = torch.autograd.grad((token_logps(hidden, weight, targets, 3) * upstream).sum(), (hidden, weight))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


def test_chunked_path_keeps_no_logits_for_backward():
    torch.manual_seed(0)
    num_tokens, hidden_size, vocab = 512, 16, 4096
    hidden = torch.randn(num_tokens, hidden_size, requires_grad=True)
    weight = torch.randn(vocab, hidden_size, requires_grad=True)
    targets = torch.randint(0, vocab, (num_tokens,))
    logit_bytes = num_tokens * vocab * 4
    assert saved_bytes(lambda: token_logps(hidden, weight, targets, 0)) >= logit_bytes  # the log-softmax output
    inputs_bytes = (hidden.numel() + weight.numel()) * 4 + targets.numel() * 8
    assert saved_bytes(lambda: token_logps(hidden, weight, targets, 64)) <= inputs_bytes
    # All positions within one chunk: the plain pass, keeping the log-softmax rather than recomputing the logits.
    assert saved_bytes(lambda: token_logps(hidden, weight, targets, num_tokens)) >= logit_bytes


def test_auto_chunk_is_about_64_mib_of_fp32_logits():
    assert auto_chunk_tokens(128_256) == 128
    assert auto_chunk_tokens(4096) == 4096
    assert auto_chunk_tokens(10_000_000) == 64  # floor
    assert resolve_chunk_tokens("auto", 128_256) == 128 and resolve_chunk_tokens(0, 128_256) == 0
