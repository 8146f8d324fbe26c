"""Generation health statistics: the numbers a researcher watches during preference training.

SimPO's known failure modes are verbosity and collapse into repetition, so we report length percentiles
(beside the data's chosen/rejected lengths), the share of samples cut by max_new_tokens, distinct-n, and
a loop rate. Pure functions over rows; the per-host parts add up exactly on the leader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from simpo_live.rollout.rows import GenerationRow

LOOP_NGRAM = 4
LOOP_MIN_WORDS = 16
LOOP_DISTINCT_BELOW = 0.5


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i: i + n]) for i in range(len(words) - n + 1)]


def distinct_ratio(words: list[str], n: int) -> float | None:
    """Unique n-grams / n-grams in one text; None when it has no n-gram."""
    grams = ngrams(words, n)
    return len(set(grams)) / len(grams) if grams else None


def is_looping(words: list[str]) -> bool:
    """A long sample in which most 4-grams are repeats: the model is stuck in a loop."""
    if len(words) < LOOP_MIN_WORDS:
        return False
    ratio = distinct_ratio(words, LOOP_NGRAM)
    return ratio is not None and ratio < LOOP_DISTINCT_BELOW


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


@dataclass
class HostStats:
    """One host's contribution; lists are short (one int per sample) so exact percentiles stay possible."""

    rank: int
    num_prompts: int = 0
    num_samples: int = 0
    total_tokens: int = 0
    num_length_stops: int = 0
    num_looping: int = 0
    distinct_1_sum: float = 0.0
    distinct_2_sum: float = 0.0
    distinct_count: int = 0
    score_sum: float = 0.0
    score_count: int = 0
    generation_time_sec: float = 0.0
    scoring_time_sec: float = 0.0
    engine_creation_time_sec: float = 0.0
    lengths: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add_row(self, row: GenerationRow) -> None:
        words = row.generated_text.split()
        self.num_samples += 1
        self.num_prompts += row.sample_index == 0
        self.total_tokens += row.generated_token_count
        self.lengths.append(row.generated_token_count)
        self.num_length_stops += row.finish_reason == "length"
        self.num_looping += is_looping(words)
        d1, d2 = distinct_ratio(words, 1), distinct_ratio(words, 2)
        if d1 is not None and d2 is not None:
            self.distinct_1_sum += d1
            self.distinct_2_sum += d2
            self.distinct_count += 1
        score = row.score
        if score is not None:
            self.score_sum += score
            self.score_count += 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_hosts(hosts: list[HostStats], reference_lengths: dict[str, list[int]] | None = None
                    ) -> dict[str, float]:
    """Leader metrics (without the `inference_eval/` prefix) from every host's stats."""
    samples = sum(h.num_samples for h in hosts)
    tokens = sum(h.total_tokens for h in hosts)
    lengths = [n for h in hosts for n in h.lengths]
    generation_time = max((h.generation_time_sec for h in hosts), default=0.0)
    distinct_count = sum(h.distinct_count for h in hosts)
    score_count = sum(h.score_count for h in hosts)
    metrics = {
        "num_hosts": len(hosts),
        "num_prompts": sum(h.num_prompts for h in hosts),
        "num_samples": samples,
        "total_tokens": tokens,
        "avg_tokens_per_prompt": tokens / max(sum(h.num_prompts for h in hosts), 1),
        "avg_tokens_per_sample": tokens / max(samples, 1),
        "generation_time_sec": generation_time,
        "tokens_per_second": tokens / generation_time if generation_time > 0 else 0.0,
        "engine_creation_time_sec": max((h.engine_creation_time_sec for h in hosts), default=0.0),
        "scoring_time_sec": max((h.scoring_time_sec for h in hosts), default=0.0),
        "length_p10": percentile(lengths, 10),
        "length_p50": percentile(lengths, 50),
        "length_p90": percentile(lengths, 90),
        "length_max": float(max(lengths, default=0)),
        "frac_stopped_by_length": sum(h.num_length_stops for h in hosts) / max(samples, 1),
        "loop_rate": sum(h.num_looping for h in hosts) / max(samples, 1),
        "distinct_1": sum(h.distinct_1_sum for h in hosts) / max(distinct_count, 1),
        "distinct_2": sum(h.distinct_2_sum for h in hosts) / max(distinct_count, 1),
    }
    if score_count:
        metrics["scorer_mean"] = sum(h.score_sum for h in hosts) / score_count
    for name, values in (reference_lengths or {}).items():
        for q in (10, 50, 90):
            metrics[f"data_{name}_length_p{q}"] = percentile(values, q)
    return metrics

