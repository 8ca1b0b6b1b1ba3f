"""Bootstrap, normal and empirical Bernstein intervals."""

import math

import numpy as np
import pytest

from offline_eval.estimators import RoundTerms
from offline_eval.evaluate import estimator_inputs
from offline_eval.intervals import (
    _COUNT_TABLE,
    bootstrap_estimates,
    bootstrap_estimates_loop,
    empirical_bernstein_bounds,
    normal_interval,
    percentile_interval,
    value_bounds,
)
from offline_eval.synthetic import SyntheticBandit


def _terms(seed=0, n=500):
    rng = np.random.default_rng(seed)
    weight = rng.exponential(1.0, size=n)
    reward = (rng.random(n) < 0.3).astype(float)
    mean_terms = RoundTerms(values=weight * reward)
    ratio_terms = RoundTerms(values=np.zeros(n), numerator=weight * reward, denominator=weight)
    shifted = RoundTerms(values=np.full(n, 0.25), influence_values=weight * reward)
    return [mean_terms, ratio_terms, shifted]


def test_fast_multinomial_matches_per_resample_loop():
    terms = _terms()
    fast = bootstrap_estimates(terms, n_resamples=40, seed=3, method="multinomial")
    loop = bootstrap_estimates_loop(terms, n_resamples=40, seed=3)
    np.testing.assert_allclose(fast, loop, rtol=1e-5)


def test_ratio_renormalized_in_each_resample():
    terms = _terms()
    n = terms[1].values.size
    replicates = bootstrap_estimates(terms, n_resamples=1, seed=9, method="multinomial")
    rows = np.random.default_rng(9).integers(0, n, size=(1, n))[0]
    expected = terms[1].numerator[rows].sum() / terms[1].denominator[rows].sum()
    assert replicates[0, 1] == pytest.approx(expected, rel=1e-5)


def test_count_table_has_unit_mean_and_variance():
    assert _COUNT_TABLE.size == 256
    assert _COUNT_TABLE.mean() == pytest.approx(1.0)
    assert _COUNT_TABLE.var() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["poisson", "multinomial"])
def test_bootstrap_standard_error_matches_analytic(method):
    terms = _terms(seed=1, n=2000)
    replicates = bootstrap_estimates(terms[:1], n_resamples=2000, seed=4, method=method)
    analytic = terms[0].values.std(ddof=1) / math.sqrt(terms[0].values.size)
    assert replicates[:, 0].std() == pytest.approx(analytic, rel=0.08)


def test_influence_values_centre_replicates_on_estimate():
    terms = _terms(seed=2)
    replicates = bootstrap_estimates(terms, n_resamples=500, seed=5)
    assert np.median(replicates[:, 2]) == pytest.approx(0.25, abs=0.01)
    spread_plain = replicates[:, 0].std()
    assert replicates[:, 2].std() == pytest.approx(spread_plain, rel=0.01)


def test_bootstrap_equal_seeds_equal_replicates():
    terms = _terms()
    first = bootstrap_estimates(terms, n_resamples=30, seed=11)
    second = bootstrap_estimates(terms, n_resamples=30, seed=11)
    np.testing.assert_array_equal(first, second)


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_resamples must be >= 1"):
        bootstrap_estimates(_terms(), n_resamples=0)
    with pytest.raises(ValueError, match="bootstrap method must be one of"):
        bootstrap_estimates(_terms(), method="jackknife")


def test_percentile_interval_undefined_when_many_replicates_nan():
    replicates = np.r_[np.linspace(0, 1, 90), np.full(10, np.nan)]
    interval = percentile_interval(replicates)
    assert math.isnan(interval.lower)
    assert math.isnan(interval.upper)
    assert percentile_interval(np.linspace(0, 1, 101)).lower == pytest.approx(0.025)


def test_normal_interval_constant_terms_zero_width():
    interval = normal_interval(RoundTerms(values=np.full(50, 0.7)))
    assert interval.lower == pytest.approx(0.7)
    assert interval.upper - interval.lower == pytest.approx(0.0, abs=1e-12)
    assert interval.upper >= interval.lower


def test_empirical_bernstein_covers_mean():
    rng = np.random.default_rng(0)
    samples = (rng.random((500, 200)) < 0.3).astype(float)
    misses_low = misses_high = 0
    for row in samples:
        lower, upper = empirical_bernstein_bounds(row, 0.0, 1.0, delta=0.05)
        misses_low += lower > 0.3
        misses_high += upper < 0.3
    assert misses_low / 500 <= 0.05
    assert misses_high / 500 <= 0.05


def test_value_bounds_hold_on_synthetic_bandit():
    bandit = SyntheticBandit(seed=4)
    policy = bandit.greedy_policy(0.2)
    truth = bandit.true_value(policy)
    misses = 0
    for seed in range(100):
        data = bandit.sample(1000, seed=seed)
        inputs = estimator_inputs(data, policy[bandit.cells_of(data)], None)
        bound = value_bounds(data.reward, inputs.weight, (0.0, 1.0), clip=float(inputs.weight.max()))
        assert 0.0 <= bound.lower <= bound.upper <= 1.0
        misses += not bound.lower <= truth <= bound.upper
    assert misses <= 10  # each side holds with probability >= 95%


def test_value_bounds_reject_rewards_outside_range():
    with pytest.raises(ValueError, match="rewards must lie in reward_range"):
        value_bounds(np.array([0.0, 2.0]), np.ones(2), (0.0, 1.0), clip=1.0)
