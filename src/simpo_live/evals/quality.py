"""Is the model getting better? Score statistics of one eval and its win rates against the baseline and previous evals.

The leader keeps a small table per eval step, `scores.jsonl` beside `summary.json`: one line per sample with its
global prompt index, sample index, score, length, finish reason and a digest of its text. Comparisons pair samples
by global index through these tables, never by host file, so they hold for any number of ranks, across a resume,
and across a change of world size. A score is the reward model's when one is set, else the user scorer's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simpo_live.atomic import atomic_write
from simpo_live.evals.winrate import Sample, compare
from simpo_live.rollout.rows import GenerationRow

SCORES_FILE = "scores.jsonl"
Key = tuple[int, int]


def text_digest(text: str) -> str:
    """Identical answers tie, whatever their scores: comparisons match texts by this digest."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ScoreEntry:
    """What the leader needs of one row (a few numbers, gathered from every rank); a line of `scores.jsonl`."""

    global_prompt_index: int
    sample_index: int
    score: float | None  # the comparison score: the reward model's, else the user scorer's
    reward: float | None
    length: int
    finish_reason: str
    text_digest: str

    @classmethod
    def of(cls, row: GenerationRow) -> ScoreEntry:
        return cls(row.global_prompt_index, row.sample_index, row.comparison_score,
                   row.reward.value if row.reward is not None else None, row.generated_token_count,
                   row.finish_reason, text_digest(row.generated_text))

    @property
    def key(self) -> Key:
        return self.global_prompt_index, self.sample_index

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_scores(step_dir: Path, entries: list[ScoreEntry]) -> None:
    with atomic_write(step_dir / SCORES_FILE) as f:
        for entry in sorted(entries, key=lambda e: e.key):
            f.write(json.dumps(entry.to_json()) + "\n")


def read_scores(step_dir: Path) -> dict[Key, Sample] | None:
    """The step's scored samples, or None when that eval left no table (not run, failed, or nothing scored)."""
    path = step_dir / SCORES_FILE
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return as_samples([ScoreEntry(**json.loads(line)) for line in lines if line])


def as_samples(entries: list[ScoreEntry]) -> dict[Key, Sample] | None:
    samples = {e.key: Sample(e.score, e.length, e.text_digest) for e in entries if e.score is not None}
    return samples or None


def mean_and_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(variance)


def reward_statistics(entries: list[ScoreEntry]) -> dict[str, float]:
    """Reward mean and spread over all rows and over rows that stopped naturally (not cut by max_new_tokens)."""
    rewards = [e.reward for e in entries if e.reward is not None]
    if not rewards:
        return {}
    stopped = [e.reward for e in entries if e.reward is not None and e.finish_reason != "length"]
    mean, std = mean_and_std(rewards)
    metrics = {"reward_mean": mean, "reward_std": std, "reward_se": std / math.sqrt(len(rewards)),
               "num_rewarded": len(rewards), "num_rewarded_stopped": len(stopped),
               "frac_rewarded_truncated": 1 - len(stopped) / len(rewards)}
    if stopped:
        metrics["reward_mean_stopped"], metrics["reward_std_stopped"] = mean_and_std(stopped)
    return metrics


def reference_steps(step: int, schedule: list[int], output_dir: Path) -> tuple[int | None, int | None]:
    """(baseline step, previous step with a score table): the baseline is the first scheduled eval."""
    baseline = schedule[0] if schedule else None
    earlier = [s for s in schedule if s < step and (output_dir / f"step_{s:06d}" / SCORES_FILE).is_file()]
    return baseline, (earlier[-1] if earlier else None)


def win_rate_metrics(step: int, entries: list[ScoreEntry], schedule: list[int], output_dir: Path
                     ) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, what each comparison was made against). This step against itself at the baseline: exactly 0.5."""
    current = as_samples(entries)
    if current is None:
        return {}, {"reason": "no scores (set inference_eval.reward_model or inference_eval.scorer)"}
    baseline_step, previous_step = reference_steps(step, schedule, output_dir)
    metrics: dict[str, float] = {}
    against: dict[str, Any] = {"baseline_step": baseline_step, "previous_step": previous_step}
    baseline = current if baseline_step == step else read_scores(output_dir / f"step_{baseline_step:06d}")
    if baseline is None:
        against["reason"] = f"the baseline eval (step {baseline_step}) left no score table"
    elif (result := compare(current, baseline)) is not None:
        metrics.update(result.to_metrics())
    if previous_step is not None and previous_step != step:
        previous = read_scores(output_dir / f"step_{previous_step:06d}")
        if previous is not None and (result := compare(current, previous)) is not None:
            metrics.update(result.to_metrics("_vs_previous"))
    return metrics, against


def eval_console_line(step: int, metrics: dict[str, float]) -> str:
    """The one line the leader prints after an eval."""
    parts = [f"eval step {step}", f"{metrics['num_samples']:.0f} samples on {metrics['num_hosts']:.0f} rank(s)"]
    if "reward_mean" in metrics:
        parts.append(f"reward {metrics['reward_mean']:.3f}")
    elif "scorer_mean" in metrics:
        parts.append(f"score {metrics['scorer_mean']:.3f}")
    if "win_rate" in metrics:
        parts.append(f"win rate {metrics['win_rate']:.3f} ± {metrics['win_rate_se']:.3f}")
        if "lc_win_rate" in metrics:
            parts.append(f"LC {metrics['lc_win_rate']:.3f} ± {metrics['lc_win_rate_se']:.3f}")
    parts.append(f"median length {metrics['length_p50']:.0f}")
    parts.append(f"stopped by length {metrics['frac_stopped_by_length']:.0%}")
    parts.append(f"{metrics.get('total_callback_time_sec', 0.0):.1f} s")
    return " | ".join(parts)
