"""Per-request seeded sampling: greedy, temperature, top-k, top-p, with one uniform per row.

The uniform for a row is a stateless hash (splitmix64) of (the sample's seed, its output position), turned into a
token by inverse CDF. No generator state exists, so a sample's tokens do not depend on its batch-mates, the batch
size or order, the page size or the host, and it is far cheaper than drawing V numbers per row
(docs/decisions.md). Top-p is computed over the top 256 candidates and falls back to a full sort for rows whose
nucleus is larger, so it is exact. This module decides nothing about which rows run.
"""

from __future__ import annotations

import numpy as np
import torch

from simpo_live.engine.params import SamplingParams
from simpo_live.seeds import mix, mix_pairs

NUM_CANDIDATES = 256
CDF_BLOCK = 64  # two-level inverse CDF for rows at least 4 blocks wide (see _inverse_cdf)


def uniform(seed: int, position: int) -> float:
    """A float64 in (0, 1) from (seed, output position) alone; 53 bits so it is exact and never 0 or 1."""
    h = mix(seed, position)
    return ((h >> 11) + 0.5) / float(1 << 53)


def uniforms(seeds: list[int], positions: list[int]) -> np.ndarray:
    """`uniform` of each (seed, position) pair, bit for bit, in one vectorised pass: per-row Python hashing cost
    milliseconds per decode round at a thousand sequences."""
    h = mix_pairs(seeds, positions)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index j per row with cdf[j-1] <= u * total < cdf[j]; weights (R, C) >= 0 need not be normalised.

    float32 running sums: each row is summed on its own, so the result is a function of that row alone (a float64
    copy of a 256 x 32k logits block cost more than the rest of the sampler). Wide rows go two-level: a running
    sum over blocks of CDF_BLOCK picks the block, then one within it, because a cumsum over the full row is
    sequential and cost half the sampler (docs/decisions.md)."""
    weights = weights.float()
    rows, width = weights.shape
    if width % CDF_BLOCK or width < 4 * CDF_BLOCK:
        cdf = weights.cumsum(-1)  # (R, C)
        target = (u * cdf[:, -1].double()).float().unsqueeze(-1)  # (R, 1)
        index = torch.searchsorted(cdf, target, right=True).squeeze(-1)
        return index.clamp_(max=width - 1)
    blocks = weights.view(rows, width // CDF_BLOCK, CDF_BLOCK)
    block_cdf = blocks.sum(-1).cumsum(-1)  # (R, NB)
    target = (u * block_cdf[:, -1].double()).float().unsqueeze(-1)  # (R, 1)
    block = torch.searchsorted(block_cdf, target, right=True).clamp_(max=block_cdf.shape[-1] - 1)  # (R, 1)
    before = torch.where(block > 0, block_cdf.gather(-1, (block - 1).clamp(min=0)), 0.0)
    inner = blocks.gather(1, block.unsqueeze(-1).expand(rows, 1, CDF_BLOCK)).squeeze(1)  # (R, CDF_BLOCK)
    offset = torch.searchsorted(inner.cumsum(-1), (target - before).clamp_(min=0.0), right=True).squeeze(-1)
    # Rounding can put the target past the block's own running sum: take its last token with weight > 0.
    last_positive = CDF_BLOCK - 1 - (inner > 0).flip(-1).int().argmax(-1)
    offset = torch.where(offset >= CDF_BLOCK, last_positive, offset)
    return block.squeeze(-1) * CDF_BLOCK + offset


def _sample_restricted(x: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor,
                       num_candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of scaled logits x (R, V) with top-k/top-p cut-offs; returns (token ids, rows needing more candidates)."""
    vocab = x.shape[-1]
    values, ids = torch.topk(x, num_candidates, dim=-1)  # (R, C), sorted descending
    rank = torch.arange(num_candidates, device=x.device)
    has_top_k = top_k > 0
    values = values.masked_fill(has_top_k.unsqueeze(-1) & (rank >= top_k.unsqueeze(-1)), float("-inf"))
    # Top-p is over the distribution after top-k (renormalised), else over the full vocabulary.
    lse = torch.where(has_top_k, torch.logsumexp(values, -1), torch.logsumexp(x, -1))
    probs = torch.exp(values - lse.unsqueeze(-1))  # (R, C)
    mass_before = probs.cumsum(-1) - probs
    keep = mass_before < top_p.unsqueeze(-1)
    keep[:, 0] = True
    needs_more = ~has_top_k & (probs.sum(-1) < top_p) & (num_candidates < vocab)
    choice = _inverse_cdf(probs * keep, u)
    return ids.gather(-1, choice.unsqueeze(-1)).squeeze(-1), needs_more


def sample(logits: torch.Tensor, params: list[SamplingParams], seeds: list[int], positions: list[int],
           want_logprobs: bool = False) -> tuple[list[int], list[float] | None]:
    """Pick one token per row of logits (R, V); row i uses params[i], seeds[i] and output position positions[i]."""
    logits = logits.float()
    rows = [i for i, p in enumerate(params) if not p.is_greedy]
    # (R,) argmax only where some row is greedy: it is a full pass over the logits.
    tokens = logits.argmax(-1) if len(rows) < len(params) else None
    if rows:
        device = logits.device
        # When every row samples (the common case) the row gathers and scatters are skipped: at 256 x 4096 each
        # costs about as much as the softmax. Dividing by a temperature of exactly 1 is skipped too (x / 1 == x).
        every_row = len(rows) == len(params)
        index = None if every_row else torch.tensor(rows, device=device)
        x = logits if every_row else logits.index_select(0, index)  # (S, V)
        temperatures = [params[i].temperature for i in rows]
        if any(t != 1.0 for t in temperatures):
            x = x / torch.tensor(temperatures, device=device).unsqueeze(-1)
        u = torch.from_numpy(uniforms([seeds[i] for i in rows], [positions[i] for i in rows])).to(device)
        restricted = [p.top_k > 0 or p.top_p < 1.0 for p in (params[i] for i in rows)]
        plain = [j for j, r in enumerate(restricted) if not r]
        if len(plain) == len(rows):
            picked = _inverse_cdf(torch.softmax(x, -1), u)
        else:
            picked = torch.empty(len(rows), dtype=torch.long, device=device)
        if plain and len(plain) < len(rows):
            j = torch.tensor(plain, device=device)
            picked[j] = _inverse_cdf(torch.softmax(x.index_select(0, j), -1), u[j])
        vocab = x.shape[-1]
        # Rows are grouped by their own candidate count so no row's arithmetic depends on a batch-mate's top_k.
        groups: dict[int, list[int]] = {}
        for j, r in enumerate(restricted):
            if r:
                groups.setdefault(min(vocab, max(NUM_CANDIDATES, params[rows[j]].top_k)), []).append(j)
        for num_candidates, cut in groups.items():
            j = torch.tensor(cut, device=device)
            top_k = torch.tensor([params[rows[r]].top_k for r in cut], device=device)
            top_p = torch.tensor([params[rows[r]].top_p for r in cut], device=device)
            xj = x.index_select(0, j)
            chosen, needs_more = _sample_restricted(xj, top_k, top_p, u[j], num_candidates)
            if bool(needs_more.any()):
                # A nucleus wider than the candidates: redo those rows over the whole (sorted) vocabulary.
                m = needs_more.nonzero().squeeze(-1)
                chosen[m], _ = _sample_restricted(xj[m], top_k[m], top_p[m], u[j][m], vocab)
            picked[j] = chosen
        if every_row:
            tokens = picked
        else:
            tokens[index] = picked
    logprobs = None
    if want_logprobs:
        logprobs = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).tolist()
    return tokens.tolist(), logprobs
