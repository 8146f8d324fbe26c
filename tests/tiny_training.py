"""Tiny random models, pair batches and gradient helpers for the model/training tests (importable: `tests/` is
on the pytest path)."""

import torch

from simpo_live.data import TokenizedPair, collate_pairs
from simpo_live.model import LlamaModel, ModelArgs

VOCAB = 97


def tiny_model(tied: bool, seed: int = 0) -> LlamaModel:
    torch.manual_seed(seed)
    args = ModelArgs(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tied)
    model = LlamaModel(args)
    for p in model.parameters():  # random, not ones: norms and the head all carry signal
        torch.nn.init.normal_(p, std=0.3)
    return model


def tiny_pairs(seed: int = 1) -> list[TokenizedPair]:
    g = torch.Generator().manual_seed(seed)
    rand = lambda n: torch.randint(4, VOCAB, (n,), generator=g).tolist()  # noqa: E731
    return [TokenizedPair(rand(5), rand(9), rand(4), "t:1", ""), TokenizedPair(rand(3), rand(2), rand(11), "t:2", ""),
            TokenizedPair(rand(7), rand(6), rand(6), "t:3", "")]


def pair_batch(seed: int = 1):
    return collate_pairs(tiny_pairs(seed), pad_id=0)


def reference_avg_logps(model: LlamaModel, batch) -> torch.Tensor:
    """Today's path written out: (N, V) logits at the response positions, log-softmax, gather, mean per row."""
    predicts = batch.response_mask[:, 1:]
    rows, cols = predicts.nonzero(as_tuple=True)
    logits = model(batch.input_ids, batch.positions, logits_at=(rows, cols)).float()  # (N, V)
    picked = torch.log_softmax(logits, -1).gather(-1, batch.input_ids[rows, cols + 1][:, None]).squeeze(-1)
    sums = torch.zeros(batch.input_ids.shape[0]).index_add(0, rows, picked)
    return sums / predicts.sum(1).clamp(min=1)


def loss_and_grads(model: LlamaModel, avg_logps_fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    avg = avg_logps_fn()
    loss = torch.nn.functional.softplus(-2.0 * (avg[:3] - avg[3:] - 0.5)).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def saved_bytes(fn, exclude: set[int] = frozenset()) -> int:
    """Bytes autograd keeps for backward while fn runs (each storage once; `exclude`: storage addresses)."""
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in exclude:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())
