"""Win rate and AlpacaEval's length-controlled win rate, on hand-made comparisons with known answers."""

import math

import numpy as np
import pytest

from simpo_live.evals.quality import ScoreEntry, reference_steps, reward_statistics, win_rate_metrics, write_scores
from simpo_live.evals.winrate import Sample, compare, lc_win_rate, preference


def samples(scores, lengths=None, digests=None):
    lengths = lengths or [10] * len(scores)
    digests = digests or [f"t{i}-{s}" for i, s in enumerate(scores)]
    return {(i, 0): Sample(float(s), int(n), d) for i, (s, n, d) in enumerate(zip(scores, lengths, digests))}


def length_biased_comparisons(n: int, seed: int = 0):
    """Equal quality, but this eval's answer is longer in 80% of comparisons (by 40-120 tokens) and the longer
    answer wins 80% of the time."""
    rng = np.random.default_rng(seed)
    longer = rng.random(n) < 0.8
    extra = rng.integers(40, 121, n)
    this_len = np.where(longer, 100 + extra, 100 - extra // 2)
    ref_len = np.where(longer, 100, 100 + extra - extra // 2)
    longer_wins = rng.random(n) < 0.8
    this_wins = np.where(longer, longer_wins, ~longer_wins)
    this = {(i, 0): Sample(float(this_wins[i]), int(this_len[i]), f"a{i}") for i in range(n)}
    reference = {(i, 0): Sample(0.5, int(ref_len[i]), f"b{i}") for i in range(n)}
    return this, reference


def test_the_baseline_against_itself_is_exactly_one_half():
    base = samples([0.3, 1.7, -2.0, 0.3, 5.0] * 4, lengths=[3, 9, 27, 4, 11] * 4)
    result = compare(base, base)
    assert result.win_rate == 0.5 and result.lc_win_rate == 0.5
    assert result.win_rate_se == 0.0 and result.lc_win_rate_se == 0.0
    assert (result.wins, result.ties, result.losses) == (0, 20, 0)


def test_win_tie_loss_and_the_standard_error_by_hand():
    this = samples([2.0, 1.0, 3.0, 3.0])
    ref = samples([1.0, 2.0, 3.0, 0.0])
    result = compare(this, ref)
    prefs = [1.0, 0.0, 0.5, 1.0]
    mean = sum(prefs) / 4
    sd = math.sqrt(sum((p - mean) ** 2 for p in prefs) / 3)
    assert result.win_rate == pytest.approx(0.625)
    assert result.win_rate_se == pytest.approx(sd / 2)
    assert (result.wins, result.ties, result.losses) == (2, 1, 1)
    assert result.lc_win_rate is None  # 4 comparisons: too few for the cross-validated GLM


def test_the_same_text_ties_whatever_its_scores():
    assert preference(Sample(1.0000001, 5, "same"), Sample(1.0, 5, "same")) == 0.5
    assert preference(Sample(1.0000001, 5, "x"), Sample(1.0, 5, "y")) == 1.0


def test_pairs_by_global_index_not_by_position():
    this = {(3, 1): Sample(2.0, 1, "a"), (0, 0): Sample(0.0, 1, "b")}
    ref = {(0, 0): Sample(1.0, 1, "c"), (3, 1): Sample(1.0, 1, "d"), (7, 0): Sample(9.0, 1, "e")}
    result = compare(this, ref)
    assert result.num_comparisons == 2 and result.wins == 1 and result.losses == 1


def test_length_bias_inflates_the_raw_win_rate_but_not_the_lc_win_rate():
    this, reference = length_biased_comparisons(1000)
    result = compare(this, reference)
    assert result.win_rate > 0.64
    assert abs(result.lc_win_rate - 0.5) < 0.05
    assert 0.0 < result.lc_win_rate_se < 0.05


def test_without_length_differences_the_lc_win_rate_is_the_raw_one():
    rng = np.random.default_rng(1)
    prefs = (rng.random(400) < 0.7).astype(float)
    rate, se = lc_win_rate(prefs, np.zeros(400))
    assert rate == pytest.approx(prefs.mean(), abs=0.01)
    assert se == pytest.approx(prefs.std(ddof=1) / 20, rel=0.05)  # the delta method gives back the plain sem


def test_a_better_model_of_the_same_length_wins():
    rng = np.random.default_rng(2)
    this = {(i, 0): Sample(float(rng.normal(1.0)), 10, f"a{i}") for i in range(200)}
    ref = {(i, 0): Sample(float(rng.normal(0.0)), 10, f"b{i}") for i in range(200)}
    result = compare(this, ref)
    assert result.win_rate > 0.7 and result.lc_win_rate > 0.7


def entry(i, score, reward=None, finish="stop", length=5):
    return ScoreEntry(global_prompt_index=i, sample_index=0, score=score, reward=reward, length=length,
                      finish_reason=finish, text_digest=f"d{i}-{score}")


def test_reward_statistics_over_all_rows_and_natural_stops():
    entries = [entry(0, 1.0, 1.0), entry(1, 3.0, 3.0), entry(2, 8.0, 8.0, finish="length")]
    stats = reward_statistics(entries)
    assert stats["reward_mean"] == pytest.approx(4.0) and stats["reward_mean_stopped"] == pytest.approx(2.0)
    assert stats["reward_std"] == pytest.approx(math.sqrt(((1 - 4) ** 2 + (3 - 4) ** 2 + (8 - 4) ** 2) / 2))
    assert stats["frac_rewarded_truncated"] == pytest.approx(1 / 3)


def test_win_rates_against_the_baseline_and_previous_tables(tmp_path):
    schedule = [0, 10, 20]
    base = [entry(i, 0.0) for i in range(12)]
    write_scores(tmp_path / "step_000000", base)
    metrics, against = win_rate_metrics(0, base, schedule, tmp_path)
    assert metrics["win_rate"] == 0.5 and "win_rate_vs_previous" not in metrics
    at_10 = [entry(i, 1.0 if i < 9 else -1.0) for i in range(12)]
    write_scores(tmp_path / "step_000010", at_10)
    metrics, against = win_rate_metrics(10, at_10, schedule, tmp_path)
    assert metrics["win_rate"] == pytest.approx(9 / 12) and metrics["win_rate_vs_previous"] == pytest.approx(9 / 12)
    at_20 = [entry(i, 1.0 if i < 9 else 2.0) for i in range(12)]
    metrics, against = win_rate_metrics(20, at_20, schedule, tmp_path)
    assert metrics["win_rate"] == pytest.approx(1.0) and against == {"baseline_step": 0, "previous_step": 10}
    assert metrics["win_rate_vs_previous"] == pytest.approx((9 * 0.5 + 3) / 12)
    assert reference_steps(20, schedule, tmp_path) == (0, 10)
