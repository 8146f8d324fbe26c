"""Win rate and length-controlled win rate of one eval's samples against a reference eval's samples.

Comparisons pair the same (global prompt index, sample index). Preference p_i = 1 when this eval's score beats the
reference's, 0.5 on a tie (equal scores, or the same generated text), 0 otherwise.

- win_rate = mean(p); its standard error is the sample standard deviation of p over sqrt(n) (AlpacaEval's `sem`).
- lc_win_rate: AlpacaEval 2's length-controlled win rate in its minimal form, `length_controlled_minimal` in
  tatsu-lab/alpaca_eval `src/alpaca_eval/metrics/glm_winrate.py` (Dubois et al. 2024, arXiv:2404.04475):

      logit P(this eval wins i) = phi * tanh(d_i / sd(d)) + theta * 1,    d_i = len(reference_i) - len(this_i)

  a logistic GLM with no intercept on the features [tanh(d / sd(d)), 1], L1-penalised, fitted by scikit-learn's
  liblinear with C chosen by 5-fold cross-validation grouped by comparison on the log loss with p as a soft label
  (each comparison enters twice: label 1 with weight p, label 0 with weight 1 - p), then read at zero length
  difference: lc_win_rate = sigmoid(theta). Lengths are generated tokens (AlpacaEval counts characters; the feature
  is standardised either way). sd(d) uses ddof 1, as pandas does there; sd(d) = 0 makes the length feature 0.
  Its standard error is the delta method on the sandwich covariance of the GLM at its fitted coefficients:
  Var(theta) = [H^-1 G H^-1]_theta with H = sum q(1-q) x x^T and G = sum (p-q)^2 x x^T, then
  se = q0 (1 - q0) sd(theta) at q0 = sigmoid(theta) (cheap, and it still says how noisy the data are when the L1
  penalty pins theta to 0).
  When every p is equal (the reference against itself: all 0.5) the fit's answer is that p exactly, as AlpacaEval
  also special-cases its baseline; under 10 comparisons (fewer than two per fold) no LC win rate is reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

CV_SPLITS = 5
MIN_COMPARISONS_FOR_CV = 2 * CV_SPLITS


@dataclass(frozen=True)
class Sample:
    """What a comparison needs of one generated sample."""

    score: float
    length: int
    text_digest: str = ""


@dataclass(frozen=True)
class WinRate:
    win_rate: float
    win_rate_se: float
    lc_win_rate: float | None  # None under MIN_COMPARISONS_FOR_CV comparisons: too few to fit the GLM
    lc_win_rate_se: float | None
    num_comparisons: int
    wins: int
    ties: int
    losses: int

    def to_metrics(self, suffix: str = "") -> dict[str, float]:
        return {f"{key}{suffix}": float(value) for key, value in asdict(self).items() if value is not None}


def preference(this: Sample, reference: Sample) -> float:
    if this.text_digest and this.text_digest == reference.text_digest:
        return 0.5  # the same answer is a tie, whatever low bits a batched scorer left in the two scores
    if this.score > reference.score:
        return 1.0
    return 0.5 if this.score == reference.score else 0.0


def paired(this: dict[tuple[int, int], Sample], reference: dict[tuple[int, int], Sample]
           ) -> tuple[np.ndarray, np.ndarray]:
    """(preferences, d = reference length - this length) over the keys both evals have, in key order; (n,) each."""
    keys = sorted(this.keys() & reference.keys())
    prefs = np.array([preference(this[k], reference[k]) for k in keys], dtype=np.float64)
    delta = np.array([reference[k].length - this[k].length for k in keys], dtype=np.float64)
    return prefs, delta


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def length_features(delta: np.ndarray) -> np.ndarray:
    sd = delta.std(ddof=1) if len(delta) > 1 else 0.0
    standardised = delta / sd if sd > 0 else np.zeros_like(delta)
    return np.stack([np.tanh(standardised), np.ones_like(delta)], axis=1)  # (n, 2)


def soft_label_rows(features: np.ndarray, prefs: np.ndarray):
    """Each comparison twice: label 1 weighted p, label 0 weighted 1 - p (log loss with a soft label)."""
    x = np.concatenate([features, features])  # (2n, 2)
    y = np.concatenate([np.ones(len(prefs)), np.zeros(len(prefs))])
    weights = np.concatenate([prefs, 1.0 - prefs])
    groups = np.concatenate([np.arange(len(prefs))] * 2)
    return x, y, weights, groups


def fit_cross_validated(features: np.ndarray, prefs: np.ndarray) -> np.ndarray:
    """The GLM's coefficients [phi, theta], with C picked by cross-validation."""
    # Imported here: scikit-learn takes over a second to import, and every training process imports this module.
    import sklearn
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GroupKFold

    x, y, weights, groups = soft_label_rows(features, prefs)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = get_scorer("neg_log_loss").set_score_request(sample_weight=True)
        model = LogisticRegressionCV(Cs=10, l1_ratios=(1.0,), cv=GroupKFold(CV_SPLITS), scoring=scorer,
                                     solver="liblinear", fit_intercept=False, random_state=123,
                                     use_legacy_attributes=False)
        model.set_fit_request(sample_weight=True)
        model.fit(x, y, sample_weight=weights, groups=groups)
    return np.ravel(model.coef_)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sandwich_standard_error(features: np.ndarray, prefs: np.ndarray, coef: np.ndarray) -> float:
    """Delta-method standard error of sigmoid(theta); see the module docstring."""
    q = sigmoid(features @ coef)  # (n,)
    hessian = features.T @ (features * (q * (1 - q))[:, None])  # (2, 2)
    scores = features.T @ (features * ((prefs - q) ** 2)[:, None])  # (2, 2)
    inverse = np.linalg.pinv(hessian)
    theta_variance = (inverse @ scores @ inverse)[1, 1]
    q0 = sigmoid(coef[1])
    return float(q0 * (1 - q0) * math.sqrt(max(theta_variance, 0.0)))


def lc_win_rate(prefs: np.ndarray, delta: np.ndarray) -> tuple[float | None, float | None]:
    """(length-controlled win rate, its standard error); see the module docstring. (None, None) when there are
    too few comparisons for the cross-validated fit."""
    if len(prefs) and np.all(prefs == prefs[0]):
        return float(prefs[0]), 0.0
    if len(prefs) < MIN_COMPARISONS_FOR_CV:
        return None, None
    features = length_features(delta)
    coef = fit_cross_validated(features, prefs)
    return float(sigmoid(coef[1])), sandwich_standard_error(features, prefs, coef)


def compare(this: dict[tuple[int, int], Sample], reference: dict[tuple[int, int], Sample]) -> WinRate | None:
    """Win rates of `this` against `reference` over their shared (prompt, sample) keys; None when none is shared."""
    prefs, delta = paired(this, reference)
    if len(prefs) == 0:
        return None
    lc, lc_se = lc_win_rate(prefs, delta)
    return WinRate(win_rate=float(prefs.mean()), win_rate_se=standard_error(prefs), lc_win_rate=lc,
                   lc_win_rate_se=lc_se, num_comparisons=len(prefs), wins=int((prefs == 1).sum()),
                   ties=int((prefs == 0.5).sum()), losses=int((prefs == 0).sum()))
