"""Activation checkpointing gives the same losses and gradients as keeping activations, and keeps less."""

import torch

from simpo_live.train.logps import response_avg_logps
from tiny_training import loss_and_grads, pair_batch, saved_bytes, tiny_model


def test_checkpointed_layers_give_the_same_loss_and_gradients():
    model, batch = tiny_model(tied=True), pair_batch()
    for chunk in (0, 5):
        ref_loss, ref_grads = loss_and_grads(model, lambda: response_avg_logps(model, batch, chunk))
        model.set_activation_checkpointing(True)
        loss, grads = loss_and_grads(model, lambda: response_avg_logps(model, batch, chunk))
        model.set_activation_checkpointing(False)
        # The recomputation runs the same CPU kernels on the same inputs: bitwise equal here.
        assert torch.equal(loss, ref_loss)
        for name, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[name], rtol=0, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_checkpointing_keeps_only_layer_inputs():
    model, batch = tiny_model(tied=False), pair_batch()
    full = saved_bytes(lambda: response_avg_logps(model, batch, 4))
    model.set_activation_checkpointing(True)
    checkpointed = saved_bytes(lambda: response_avg_logps(model, batch, 4))
    assert checkpointed < full / 3
    with torch.no_grad():  # inference (the engine) never checkpoints: nothing to recompute for
        model(batch.input_ids)
