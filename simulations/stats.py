"""Means and confidence intervals across seeds.

Each seed of a simulation is one independent replication, so a statistic is
computed once per seed and the seeds are summarized by their mean and a
Student-t interval. With a single seed there is no spread to estimate and the
interval bounds are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["Interval", "mean_interval", "band", "intervals_overlap"]


@dataclass(frozen=True)
class Interval:
    """A mean across seeds with a two-sided confidence interval.

    Attributes
    ----------
    mean : float
        Mean of the per-seed values.
    low, high : float
        Interval bounds; NaN with fewer than two seeds.
    n : int
        Number of seeds.
    confidence : float
        Confidence level of the interval, for example 0.95.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN with fewer than two seeds)."""
        return (self.high - self.low) / 2.0


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def mean_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> Interval:
    """Return the mean of per-seed values and its Student-t interval.

    Parameters
    ----------
    values : array-like of float
        One value per seed; NaN values are rejected.
    confidence : float
        Two-sided confidence level in (0, 1).

    Notes
    -----
    The interval is ``mean +/- t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the
    sample standard deviation. It assumes the per-seed values are independent
    and roughly normal, which holds for means over thousands of rounds.
    """
    _check_confidence(confidence)
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {data.shape}")
    if np.isnan(data).any():
        raise ValueError("values must not contain NaN")
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, math.nan, math.nan, int(data.size), confidence)
    sem = float(data.std(ddof=1)) / math.sqrt(data.size)
    t = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, data.size - 1))
    return Interval(mean, mean - t * sem, mean + t * sem, int(data.size), confidence)


def band(matrix: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the mean and Student-t band of a ``(seeds, points)`` matrix, per point.

    With one seed the bounds are equal to the mean, so a plot shows no band.
    """
    _check_confidence(confidence)
    data = np.asarray(matrix, dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"matrix must have shape (seeds, points), got {data.shape}")
    mean = data.mean(axis=0)
    if data.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    sem = data.std(axis=0, ddof=1) / math.sqrt(data.shape[0])
    t = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, data.shape[0] - 1))
    return mean, mean - t * sem, mean + t * sem


def intervals_overlap(first: Interval, second: Interval) -> bool:
    """Return whether two intervals share any point (True when a bound is NaN)."""
    if any(math.isnan(v) for v in (first.low, first.high, second.low, second.high)):
        return True
    return first.low <= second.high and second.low <= first.high
