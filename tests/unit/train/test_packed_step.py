"""The packed path equals the padded reference: losses (fp32, 1e-5) and gradients (1e-4), also with chunked
log-probs and activation checkpointing; a filler micro-batch changes nothing; the MFU arithmetic."""

import pytest
import torch

from simpo_live.data import collate_packed, collate_pairs
from simpo_live.model.args import ModelArgs
from simpo_live.train.logps import response_avg_logps
from simpo_live.train.step import StepSettings, train_step
from simpo_live.train.throughput import ModelFlops, device_peak_flops
from tiny_training import loss_and_grads, tiny_model, tiny_pairs


@pytest.mark.parametrize("chunk,checkpointing", [(0, False), (5, False), (0, True)])
def test_packed_losses_and_gradients_equal_the_padded_path(chunk, checkpointing):
    model, pairs = tiny_model(tied=True), tiny_pairs()
    model.set_activation_checkpointing(checkpointing)
    padded, packed = collate_pairs(pairs, pad_id=0), collate_packed(pairs)
    assert packed.num_computed_tokens < padded.num_computed_tokens  # the pads are gone
    ref_loss, ref_grads = loss_and_grads(model, lambda: response_avg_logps(model, padded, chunk))
    loss, grads = loss_and_grads(model, lambda: response_avg_logps(model, packed, chunk))
    assert abs(loss.item() - ref_loss.item()) <= 1e-5
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=0, atol=1e-4, msg=lambda m: f"{name}: {m}")
    # Per sequence too: a token attending across a boundary would move one sequence's average.
    torch.testing.assert_close(response_avg_logps(model, packed), response_avg_logps(model, padded),
                               rtol=0, atol=1e-5)


def one_update(micro_batches):
    model = tiny_model(tied=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    settings = StepSettings(2.0, 0.5, None, None, torch.device("cpu"))
    metrics = train_step(model, optimizer, scheduler, micro_batches, settings)
    return metrics, model.state_dict()


def test_a_filler_micro_batch_changes_no_weight_and_no_metric():
    pairs = tiny_pairs()
    filler = collate_packed(pairs[1:2])
    filler.is_filler = True
    plain, plain_weights = one_update([collate_packed(pairs)])
    padded, padded_weights = one_update([collate_packed(pairs), filler])
    assert all(torch.equal(plain_weights[k], padded_weights[k]) for k in plain_weights)
    assert (padded.loss, padded.num_tokens) == (plain.loss, plain.num_tokens)
    assert plain.padding_share == 0.0
    assert padded.padding_share == pytest.approx(filler.num_tokens / (plain.num_tokens + filler.num_tokens))
    assert plain.mfu is None  # a CPU has no known peak


def test_model_flops_by_hand_and_the_peak_lookup():
    args = ModelArgs(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, head_dim=2)
    flops = ModelFlops.of(args)
    # Per layer: q 4x4, k 4x2, v 4x2, o 4x4 = 48 weights; MLP 3 x 4 x 8 = 96; 2 layers: 288, x6 = 1728.
    assert flops.per_token == 1728 and flops.per_scored_position == 6 * 4 * 10
    assert flops.attention_per_square == 6 * 2 * 2 * 2
    # Sequences of 3 and 1 tokens, 2 scored: 1728 * 4 + 240 * 2 + 48 * (3*4 + 1*2) = 6912 + 480 + 672 = 8064
    assert flops.of_sequences([3, 1], num_scored=2) == 8064
    assert device_peak_flops(torch.device("cpu"), torch.float32, None) is None
    assert device_peak_flops(torch.device("cpu"), torch.float32, 1e11) == 1e11
