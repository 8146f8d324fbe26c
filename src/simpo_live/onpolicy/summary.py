"""A round's numbers, from the hosts' counts and the pairs read back: prompts used, pairs made, pairs dropped and
why, the score gap between chosen and rejected, lengths, and where the time went. Plus its one console line."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from simpo_live.onpolicy.pairs import PairRow

TIMES = ("engine_creation_time_sec", "generate_time_sec", "score_time_sec", "pair_time_sec")


def round_metrics(hosts: list[dict[str, Any]], rows: list[PairRow], num_overlong: int,
                  tokenize_time_sec: float) -> dict[str, float]:
    """Counts are sums over hosts; a phase's time is its slowest host's (the round waits for it)."""
    total = lambda key: float(sum(h.get(key, 0) for h in hosts))  # noqa: E731
    mean = lambda values: fmean(values) if rows else 0.0  # noqa: E731
    metrics = {
        "prompts": total("prompts"), "samples": total("num_samples"), "pairs": total("pairs"),
        "dropped_identical": total("identical"), "dropped_tied": total("tied"),
        "dropped_overlong": float(num_overlong), "training_pairs": total("pairs") - num_overlong,
        "score_gap_mean": mean([r.chosen.score - r.rejected.score for r in rows]),
        "chosen_score_mean": mean([r.chosen.score for r in rows]),
        "rejected_score_mean": mean([r.rejected.score for r in rows]),
        "chosen_tokens_mean": mean([r.chosen.token_count for r in rows]),
        "rejected_tokens_mean": mean([r.rejected.token_count for r in rows]),
        "frac_stopped_by_length": total("stopped_by_length") / max(total("num_samples"), 1.0),
        "tokenize_time_sec": tokenize_time_sec,
    }
    metrics.update({key: max(float(h.get(key, 0.0)) for h in hosts) for key in TIMES})
    return metrics


def console_line(step: int, m: dict[str, float], num_offline: int) -> str:
    mix = f", {num_offline} offline pairs per batch" if num_offline else ""
    seconds = sum(m[k] for k in TIMES) + m["tokenize_time_sec"]
    return (f"onpolicy round {step}: {m['prompts']:.0f} prompts, {m['samples']:.0f} samples -> "
            f"{m['training_pairs']:.0f} pairs (dropped: {m['dropped_tied']:.0f} tied, {m['dropped_identical']:.0f} "
            f"identical, {m['dropped_overlong']:.0f} over-long){mix}; score gap {m['score_gap_mean']:.3f}; tokens "
            f"chosen {m['chosen_tokens_mean']:.1f} / rejected {m['rejected_tokens_mean']:.1f}; {seconds:.1f}s "
            f"(generate {m['generate_time_sec']:.1f}, score {m['score_time_sec']:.1f}, pair "
            f"{m['pair_time_sec']:.2f}, tokenise {m['tokenize_time_sec']:.2f})")
