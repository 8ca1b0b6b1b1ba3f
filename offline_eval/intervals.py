"""Confidence intervals and high-confidence bounds for estimator terms.

Three kinds:

- :func:`normal_interval`: mean plus or minus ``z`` standard errors of the
  influence terms (delta method for self-normalized estimators).
- :func:`bootstrap_estimates` and :func:`percentile_interval`: the
  percentile bootstrap. All estimators and targets share the same resamples,
  so differences between them are paired. Self-normalized terms are re-summed
  inside every resample, so each resample re-normalizes.
- :func:`empirical_bernstein_bounds`: a finite-sample bound on the mean of
  bounded i.i.d. terms, used by :func:`value_bounds` for a high-confidence
  lower (and upper) bound on a policy's value with bounded rewards.

The fast bootstrap never materializes resampled arrays. It draws a matrix of
resample counts ``W`` (resamples x rows) in blocks and computes the sums every
estimator needs as one matrix product ``W @ C``, where ``C`` stacks the
per-round terms as columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from offline_eval.estimators import RoundTerms

__all__ = [
    "Interval",
    "normal_interval",
    "bootstrap_estimates",
    "bootstrap_estimates_loop",
    "percentile_interval",
    "empirical_bernstein_bounds",
    "value_bounds",
    "BOOTSTRAP_METHODS",
]

BOOTSTRAP_METHODS = ("poisson", "multinomial")
"""``poisson``: independent Poisson-like counts per row (fast, blocks over rows);
``multinomial``: the classic resample of ``n`` rows with replacement."""

# Resample counts of the ``poisson`` method: one random byte per row and
# resample, looked up in a 256-entry table where count k fills COUNT_SHARES[k]
# entries. The shares (94, 95, 46, 16, 4, 1) / 256 are close to Poisson(1)
# and keep the mean and the variance of the count at exactly 1, the two
# moments the bootstrap's variance depends on. The third central moment is
# 0.984 against Poisson's 1, and counts above 5 (Poisson probability 0.0006)
# do not occur.
COUNT_SHARES = (94, 95, 46, 16, 4, 1)
_COUNT_TABLE = np.repeat(np.arange(len(COUNT_SHARES)), COUNT_SHARES).astype(np.float32)
ROW_BLOCK = 4096
"""Rows per block of the ``poisson`` bootstrap; results depend on it, so it is fixed."""
RESAMPLE_BLOCK = 16
"""Resamples per block of the multinomial bootstrap; results depend on it, so it is fixed."""


@dataclass(frozen=True)
class Interval:
    """A two-sided interval for an estimate.

    ``lower``/``upper`` are NaN when the estimate is undefined; ``method`` is
    ``normal``, ``bootstrap`` or ``bernstein``.
    """

    lower: float
    upper: float
    method: str
    confidence: float

    @property
    def width(self) -> float:
        """Upper minus lower bound."""
        return self.upper - self.lower


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def normal_interval(terms: RoundTerms, confidence: float = 0.95, rows: np.ndarray | None = None) -> Interval:
    """Return the normal-approximation interval of an estimate.

    The standard error is that of the mean of :meth:`RoundTerms.influence`,
    which for self-normalized estimators is the delta-method linearization.
    With constant terms the width is 0, never negative.
    """
    _check_confidence(confidence)
    estimate = terms.estimate(rows)
    if math.isnan(estimate):
        return Interval(math.nan, math.nan, "normal", confidence)
    influence = terms.influence(rows)
    n = influence.size
    standard_error = float(influence.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return Interval(estimate - z * standard_error, estimate + z * standard_error, "normal", confidence)


_Layout = list[tuple[int, int | None, float]]


def _term_columns(terms_list: Sequence[RoundTerms], n: int) -> tuple[np.ndarray, _Layout]:
    """Stack terms as columns ``[1, v_1, (u_1, d_1), v_2, ...]`` and return where each lives.

    Terms with ``influence_values`` contribute those instead of ``values``,
    with the shift that centres their replicates on the estimate.
    """
    columns: list[np.ndarray] = [np.ones(n)]
    layout: _Layout = []
    for terms in terms_list:
        if terms.undefined is not None:
            layout.append((-1, None, 0.0))
            continue
        shift = 0.0
        values = terms.values
        if terms.influence_values is not None:
            values = terms.influence_values
            shift = terms.estimate() - float(values.mean())
        layout.append((len(columns), len(columns) + 1 if terms.numerator is not None else None, shift))
        columns.append(values)
        if terms.numerator is not None and terms.denominator is not None:
            columns.append(terms.numerator)
            columns.append(terms.denominator)
    return np.column_stack(columns), layout


def _estimates_from_sums(sums: np.ndarray, layout: _Layout) -> np.ndarray:
    counts = sums[:, 0]
    result = np.full((sums.shape[0], len(layout)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, (value_col, ratio_col, shift) in enumerate(layout):
            if value_col < 0:
                continue
            estimate = sums[:, value_col] / counts + shift
            if ratio_col is not None:
                estimate = estimate + sums[:, ratio_col] / sums[:, ratio_col + 1]
            result[:, j] = estimate
    return result


def bootstrap_estimates(
    terms_list: Sequence[RoundTerms],
    n_resamples: int = 1000,
    seed: int = 0,
    method: str = "poisson",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Return bootstrap replicates of several estimates on shared resamples.

    Parameters
    ----------
    terms_list : sequence of RoundTerms
        Terms of each (target, estimator) pair, all over the same ``n`` rows.
    n_resamples : int
        Number of bootstrap resamples ``B``.
    seed : int
        Seed of the generator that draws the resamples.
    method : {"poisson", "multinomial"}
        How resample counts are drawn (see :data:`BOOTSTRAP_METHODS`).
    progress : callable, optional
        Called with the number of rows (Poisson) or resamples (multinomial)
        finished after each block.

    Returns
    -------
    numpy.ndarray, shape (B, len(terms_list))
        Replicates; a column is NaN for undefined terms, and an entry is NaN
        where a resample's denominator sums to zero.

    Notes
    -----
    The ``poisson`` method draws an independent count per row and resample
    with mean 1 and variance 1 (see :data:`COUNT_SHARES`). The resample size
    therefore varies around ``n``, and every estimate divides by its
    resample's own count. Like the Poisson bootstrap it approximates the multinomial
    bootstrap for large ``n`` (J. A. Hanley, B. MacGibbon, "Creating
    non-parametric bootstrap samples using Poisson frequencies", Computer
    Methods and Programs in Biomedicine, 2006). The ``multinomial`` method
    draws the same indices, in the same order, as
    :func:`bootstrap_estimates_loop` with the same seed. Block sums are
    float32 products accumulated in float64.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"bootstrap method must be one of {BOOTSTRAP_METHODS}, got {method!r}")
    if not terms_list:
        return np.empty((n_resamples, 0))
    n = terms_list[0].values.shape[0]
    columns, layout = _term_columns(terms_list, n)
    columns32 = np.ascontiguousarray(columns, dtype=np.float32)
    rng = np.random.default_rng(seed)
    sums = np.zeros((n_resamples, columns.shape[1]))

    if method == "poisson":
        # One reused float32 buffer: allocating a fresh count matrix per block
        # costs more in page faults than the lookup itself.
        buffer = np.empty((n_resamples, ROW_BLOCK), np.float32)
        for start in range(0, n, ROW_BLOCK):
            stop = min(start + ROW_BLOCK, n)
            width = stop - start
            random_bytes = rng.bit_generator.random_raw((n_resamples * width + 7) // 8).view(np.uint8)
            counts = buffer[:, :width]
            np.take(_COUNT_TABLE, random_bytes[: n_resamples * width].reshape(n_resamples, width), out=counts)
            sums += counts @ columns32[start:stop]
            if progress is not None:
                progress(width)
    else:
        for start in range(0, n_resamples, RESAMPLE_BLOCK):
            stop = min(start + RESAMPLE_BLOCK, n_resamples)
            block = stop - start
            picks = rng.integers(0, n, size=(block, n))
            picks += (np.arange(block) * n)[:, None]
            counts = np.bincount(picks.ravel(), minlength=block * n).reshape(block, n).astype(np.float32)
            sums[start:stop] = counts @ columns32
            if progress is not None:
                progress(block)
    return _estimates_from_sums(sums, layout)


def bootstrap_estimates_loop(terms_list: Sequence[RoundTerms], n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Return bootstrap replicates the straightforward way: index arrays per resample.

    The reference for :func:`bootstrap_estimates` (method ``multinomial``)
    in tests and benchmarks: for each resample it draws ``n`` row indices
    and recomputes every estimate from the indexed terms, as a per-resample
    NumPy loop does.
    """
    if not terms_list:
        return np.empty((n_resamples, 0))
    n = terms_list[0].values.shape[0]
    rng = np.random.default_rng(seed)
    result = np.full((n_resamples, len(terms_list)), np.nan)
    shifts = [
        terms.estimate() - float(terms.influence_values.mean()) if terms.influence_values is not None else 0.0
        for terms in terms_list
    ]
    for b in range(n_resamples):
        rows = rng.integers(0, n, size=n)
        for j, terms in enumerate(terms_list):
            if terms.influence_values is not None:
                result[b, j] = float(terms.influence_values[rows].mean()) + shifts[j]
            else:
                result[b, j] = terms.estimate(rows)
    return result


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> Interval:
    """Return the percentile interval of bootstrap replicates (NaN replicates dropped).

    Returns NaN bounds when fewer than 95% of the replicates are finite,
    because the interval would then describe a selected subset of resamples.
    """
    _check_confidence(confidence)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or finite.size < 0.95 * replicates.size:
        return Interval(math.nan, math.nan, "bootstrap", confidence)
    alpha = 1.0 - confidence
    lower, upper = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(lower), float(upper), "bootstrap", confidence)


def empirical_bernstein_bounds(values: np.ndarray, low: float, high: float, delta: float) -> tuple[float, float]:
    r"""Return a lower and an upper bound on the mean of i.i.d. terms in ``[low, high]``.

    Each bound on its own is valid with probability at least ``1 - delta``
    (the theorem is one-sided, with ``ln(2/delta)``):

    .. math:: \bar Z \mp \sqrt{\frac{2 V \ln(2/\delta)}{n}} \mp \frac{7 b \ln(2/\delta)}{3 (n - 1)}

    with ``V`` the sample variance (``ddof=1``) and ``b = high - low``.

    Source: A. Maurer, M. Pontil, "Empirical Bernstein Bounds and Sample
    Variance Penalization", COLT 2009, Theorem 4.
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    n = values.size
    if n < 2:
        return (low, high)
    span = high - low
    log_term = math.log(2.0 / delta)
    variance = float(values.var(ddof=1))
    radius = math.sqrt(2.0 * variance * log_term / n) + 7.0 * span * log_term / (3.0 * (n - 1))
    mean = float(values.mean())
    return (max(low, mean - radius), min(high, mean + radius))


def value_bounds(
    reward: np.ndarray,
    weight: np.ndarray,
    reward_range: tuple[float, float],
    clip: float,
    confidence: float = 0.95,
) -> Interval:
    r"""Return high-confidence bounds on a target's value, for bounded rewards.

    With rewards in ``[r_min, r_max]`` and weights clipped at ``M``:

    - lower bound: ``r_min + LB(mean(min(w, M) (r - r_min)))``, because
      ``E[min(w, M)(r - r_min)] <= V - r_min`` when every action the target
      takes had a positive logging probability;
    - upper bound: ``r_max - LB(mean(min(w, M) (r_max - r)))`` by symmetry.

    Each one-sided bound is valid with probability at least ``confidence``
    (``delta = 1 - confidence``), so both are valid together with
    probability at least ``2 confidence - 1``. Clipping makes the terms bounded by
    ``M (r_max - r_min)``, at the price of a looser (never wrong) bound.

    NOTE: ``clip`` must not be chosen by looking at the same data for the
    guarantee to hold exactly; the command's default (the largest observed
    weight) makes the bound approximate.

    Source: P. Thomas, G. Theocharous, M. Ghavamzadeh, "High Confidence
    Off-Policy Evaluation", AAAI 2015 (clipped weights with a concentration
    inequality); the inequality is Maurer and Pontil's.
    """
    _check_confidence(confidence)
    low, high = reward_range
    if not high > low:
        raise ValueError(f"reward_range must have high > low, got {reward_range!r}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip!r}")
    if reward.min() < low or reward.max() > high:
        raise ValueError(
            f"rewards must lie in reward_range {reward_range!r} for a bound, got [{reward.min()!r}, {reward.max()!r}]"
        )
    delta = 1.0 - confidence
    clipped = np.minimum(weight, clip)
    span = clip * (high - low)
    lower_terms = clipped * (reward - low)
    upper_terms = clipped * (high - reward)
    lower = low + empirical_bernstein_bounds(lower_terms, 0.0, span, delta)[0]
    upper = high - empirical_bernstein_bounds(upper_terms, 0.0, span, delta)[0]
    return Interval(min(lower, high), max(upper, low), "bernstein", confidence)
