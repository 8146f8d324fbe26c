"""The SimPO loss of a batch equals a hand computation from transformers' logits on the same tokens."""

import torch
import torch.nn.functional as F
import transformers

from simpo_live.data import TokenizedPair, collate_pairs
from simpo_live.model.checkpoint import load_model
from simpo_live.train.step import StepSettings, forward_pairs


def hand_avg_logp(reference, prompt, response):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logps = F.log_softmax(reference(ids).logits[0].float(), dim=-1)
    # token t is predicted by position t-1
    picked = [logps[len(prompt) + i - 1, tok].item() for i, tok in enumerate(response)]
    return sum(picked) / len(picked)


def test_simpo_loss_matches_hand_computation(hf_model_dir):
    directory = hf_model_dir("qwen2")
    reference = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ours = load_model(directory).eval()
    g = torch.Generator().manual_seed(0)
    rand = lambda n: torch.randint(4, 128, (n,), generator=g).tolist()  # noqa: E731
    pairs = [TokenizedPair(rand(5), rand(3), rand(7), "t:1", ""), TokenizedPair(rand(9), rand(4), rand(2), "t:2", "")]
    batch = collate_pairs(pairs, pad_id=0)
    settings = StepSettings(beta=2.0, gamma_beta_ratio=0.5, max_grad_norm=None, autocast_dtype=None,
                            device=torch.device("cpu"))
    with torch.no_grad():
        out, chosen, rejected = forward_pairs(ours, batch, settings)
    for i, pair in enumerate(pairs):
        c = hand_avg_logp(reference, pair.prompt_ids, pair.chosen_ids)
        r = hand_avg_logp(reference, pair.prompt_ids, pair.rejected_ids)
        expected_loss = F.softplus(torch.tensor(-2.0 * ((c - r) - 0.5))).item()
        assert abs(chosen[i].item() - c) < 1e-5 and abs(rejected[i].item() - r) < 1e-5
        assert abs(out.losses[i].item() - expected_loss) < 1e-5
