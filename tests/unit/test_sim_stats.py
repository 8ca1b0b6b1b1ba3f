"""Across-seed statistics: intervals against a seeded ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.stats import Interval, band, intervals_overlap, mean_interval


def test_interval_coverage_matches_confidence():
    # 4,000 replications of 5 normal draws: a 95% t-interval must cover the
    # true mean in 95% +/- 1.5% of them (3.5 standard errors of a proportion).
    rng = np.random.default_rng(20261204)
    covered = 0
    replications = 4000
    for _ in range(replications):
        sample = rng.normal(0.05, 0.01, size=5)
        interval = mean_interval(sample, 0.95)
        covered += interval.low <= 0.05 <= interval.high
    assert abs(covered / replications - 0.95) < 0.015


def test_interval_matches_formula():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    interval = mean_interval(values, 0.95)
    # t(0.975, 3) = 3.182446305284263; s = 1.2909944487358056.
    half = 3.182446305284263 * 1.2909944487358056 / 2.0
    assert interval.mean == pytest.approx(2.5)
    assert interval.low == pytest.approx(2.5 - half)
    assert interval.high == pytest.approx(2.5 + half)


def test_interval_single_seed_has_nan_bounds():
    interval = mean_interval([0.3])
    assert interval.mean == 0.3
    assert math.isnan(interval.low)
    assert math.isnan(interval.half_width)


@pytest.mark.parametrize(
    ("values", "confidence", "match"),
    [([], 0.95, "non-empty"), ([1.0, float("nan")], 0.95, "NaN"), ([1.0, 2.0], 1.0, "confidence")],
)
def test_interval_rejects_bad_input(values, confidence, match):
    with pytest.raises(ValueError, match=match):
        mean_interval(values, confidence)


def test_band_per_point_equals_interval():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(6, 4))
    mean, low, high = band(matrix)
    for j in range(4):
        interval = mean_interval(matrix[:, j])
        assert mean[j] == pytest.approx(interval.mean)
        assert low[j] == pytest.approx(interval.low)
        assert high[j] == pytest.approx(interval.high)


def test_band_single_seed_collapses():
    mean, low, high = band(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(low, mean)
    np.testing.assert_array_equal(high, mean)


def test_overlap_cases():
    a = Interval(1.0, 0.5, 1.5, 5, 0.95)
    b = Interval(2.0, 1.6, 2.4, 5, 0.95)
    c = Interval(1.4, 1.2, 1.7, 5, 0.95)
    assert not intervals_overlap(a, b)
    assert intervals_overlap(a, c)
    assert intervals_overlap(a, Interval(3.0, math.nan, math.nan, 1, 0.95))
