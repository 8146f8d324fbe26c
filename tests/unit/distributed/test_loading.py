"""One process (or DDP): the model is loaded whole, in model.dtype, with the training knobs applied."""

import torch

from simpo_live.distributed.env import RankInfo
from simpo_live.distributed.loading import load_for_training
from simpo_live.model.checkpoint import load_model


def test_one_process_loads_in_the_configured_dtype(hf_model_dir):
    directory = hf_model_dir("llama")
    one = RankInfo(rank=0, world_size=1, local_rank=0)
    raw_model, model = load_for_training(directory, "ddp", one, torch.device("cpu"), "bfloat16",
                                         activation_checkpointing=True)
    assert model is raw_model  # no wrapper without torchrun
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(layer.checkpoint_activations for layer in model.model.layers)
    reference = load_model(directory)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reference.state_dict()[name].to(torch.bfloat16)), name
