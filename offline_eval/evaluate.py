"""Evaluate target policies on a log: estimates, intervals, comparisons, breakdowns.

:func:`evaluate` runs the whole pipeline on validated data:

1. each target's action distribution on every logged row;
2. the cross-fitted reward model, when an estimator needs it;
3. every estimator's per-round terms for every target;
4. point estimates and intervals (bootstrap on shared resamples, or normal);
5. weight diagnostics and empirical Bernstein bounds per target;
6. paired differences against a reference target, per-segment estimates
   and lifts, and estimates over time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from offline_eval.data import LoggedData
from offline_eval.diagnostics import WeightDiagnostics, weight_diagnostics
from offline_eval.estimators import (
    DirectMethod,
    DoublyRobust,
    Estimator,
    EstimatorInput,
    InverseProbabilityWeighting,
    RoundTerms,
    SelfNormalizedIPS,
)
from offline_eval.intervals import (
    BOOTSTRAP_METHODS,
    Interval,
    bootstrap_estimates,
    normal_interval,
    percentile_interval,
    value_bounds,
)
from offline_eval.reward_model import RewardModelSettings, fit_predict_cross_fitted
from offline_eval.targets import TargetPolicy, check_distribution

__all__ = [
    "EvaluationSettings",
    "EvaluationResult",
    "TargetData",
    "evaluate",
    "prepare_target",
    "estimator_inputs",
    "DEFAULT_ESTIMATORS",
]

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int], None]]
"""``factory(description, total)`` returns a callback taking the number of units done."""

DEFAULT_ESTIMATORS: tuple[Estimator, ...] = (
    DirectMethod(),
    InverseProbabilityWeighting(),
    SelfNormalizedIPS(),
    DoublyRobust(),
)
MAX_SEGMENT_VALUES = 20
"""Segments beyond the 20 most frequent values of a column are pooled as ``(other)``."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Settings of :func:`evaluate`: estimators, intervals and breakdowns.

    Parameters
    ----------
    estimators : tuple of Estimator
        Estimators to run on every target.
    interval : {"bootstrap", "normal"}
        Interval of the main estimates and of the paired differences.
    confidence : float
        Confidence level of every interval and bound.
    n_resamples : int
        Bootstrap resamples.
    bootstrap_method : {"poisson", "multinomial"}
        How resample counts are drawn.
    seed : int
        Seed of the bootstrap.
    reward_model : RewardModelSettings
        Settings of the cross-fitted reward model.
    reward_range : tuple of float, optional
        Bounds of the reward for the empirical Bernstein bounds; defaults to
        the observed minimum and maximum.
    bound_clip : float, optional
        Weight clip of the Bernstein bounds; defaults to the largest observed
        weight of each target.
    reference : str, optional
        Name of the target others are compared with; defaults to the first.
    segment_columns : tuple of str
        Context features (or ``position``) to break estimates down by.
    time_bins : int
        Number of equal-count time windows for estimates over time (0: none).
    """

    estimators: tuple[Estimator, ...] = DEFAULT_ESTIMATORS
    interval: str = "bootstrap"
    confidence: float = 0.95
    n_resamples: int = 1000
    bootstrap_method: str = "poisson"
    seed: int = 0
    reward_model: RewardModelSettings = field(default_factory=RewardModelSettings)
    reward_range: tuple[float, float] | None = None
    bound_clip: float | None = None
    reference: str | None = None
    segment_columns: tuple[str, ...] = ()
    time_bins: int = 10

    def __post_init__(self) -> None:
        if not self.estimators:
            raise ValueError("estimators must name at least one estimator")
        for estimator in self.estimators:
            if not isinstance(estimator, Estimator):
                raise TypeError(f"estimators must be Estimator instances, got {type(estimator).__name__}")
        if self.interval not in ("bootstrap", "normal"):
            raise ValueError(f"interval must be 'bootstrap' or 'normal', got {self.interval!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if self.n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        if self.bootstrap_method not in BOOTSTRAP_METHODS:
            raise ValueError(f"bootstrap_method must be one of {BOOTSTRAP_METHODS}, got {self.bootstrap_method!r}")
        if self.time_bins < 0:
            raise ValueError(f"time_bins must be >= 0, got {self.time_bins}")
        if self.bound_clip is not None and not self.bound_clip > 0:
            raise ValueError(f"bound_clip must be > 0, got {self.bound_clip!r}")
        if self.reward_range is not None and not self.reward_range[0] < self.reward_range[1]:
            raise ValueError(f"reward_range must be (low, high) with low < high, got {self.reward_range!r}")
        labels = [e.label for e in self.estimators]
        if len(set(labels)) != len(labels):
            raise ValueError(f"estimators must differ from each other, got {labels}")


@dataclass(frozen=True, eq=False)
class TargetData:
    """One target's distribution on the log and the estimator input built from it."""

    name: str
    description: str
    probabilities: np.ndarray
    inputs: EstimatorInput


@dataclass(eq=False)
class EvaluationResult:
    """Everything :func:`evaluate` computed, as tables and a summary.

    Attributes
    ----------
    estimates : pandas.DataFrame
        One row per (policy, estimator): estimate, lower, upper, interval,
        undefined reason.
    diagnostics : dict of str to WeightDiagnostics
        Per policy.
    bounds : pandas.DataFrame
        Per policy: empirical Bernstein lower and upper bounds on the value.
    comparisons : pandas.DataFrame
        Per (policy, estimator) other than the reference: paired difference
        to the reference with its interval, and the Bernstein decision.
    segments : pandas.DataFrame
        Per (segment column, value, policy, estimator): rows, estimate with a
        normal interval, lift over the reference with a paired normal interval.
    over_time : pandas.DataFrame
        Per (time window, policy, estimator): estimate with a normal interval.
    data_summary : dict
        Counts and ranges of the log, including skipped rows by reason.
    settings : dict
        The settings used.
    timings : dict of str to float
        Seconds spent per stage.
    """

    estimates: pd.DataFrame
    diagnostics: dict[str, WeightDiagnostics]
    bounds: pd.DataFrame
    comparisons: pd.DataFrame
    segments: pd.DataFrame
    over_time: pd.DataFrame
    data_summary: dict[str, Any]
    settings: dict[str, Any]
    timings: dict[str, float]
    reference: str
    descriptions: dict[str, str]

    def warnings(self) -> list[str]:
        """Return every diagnostic warning, prefixed by its policy."""
        return [f"{name}: {w}" for name, d in self.diagnostics.items() for w in d.warnings]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of the whole result (NaN becomes None)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            if isinstance(value, np.generic):
                return clean(value.item())
            return value

        return clean(
            {
                "data": self.data_summary,
                "settings": self.settings,
                "reference": self.reference,
                "policies": self.descriptions,
                "estimates": records(self.estimates),
                "diagnostics": {name: d.to_dict() for name, d in self.diagnostics.items()},
                "bounds": records(self.bounds),
                "comparisons": records(self.comparisons),
                "segments": records(self.segments),
                "over_time": records(self.over_time),
                "timings_seconds": self.timings,
            }
        )


def estimator_inputs(data: LoggedData, probabilities: np.ndarray, reward_predictions: np.ndarray | None) -> EstimatorInput:
    """Build the estimator input of one target from its distribution and the reward model."""
    rows = np.arange(data.n_rows)
    target_probability = probabilities[rows, data.logged_slot]
    reward_logged = reward_expected = None
    if reward_predictions is not None:
        reward_logged = reward_predictions[rows, data.logged_slot]
        products = np.where(data.valid, probabilities * np.nan_to_num(reward_predictions), 0.0)
        reward_expected = products.sum(axis=1)  # NaN rows stay NaN: the target's distribution is unknown there
    return EstimatorInput(
        reward=data.reward,
        propensity=data.propensity,
        target_probability=target_probability,
        reward_logged=reward_logged,
        reward_expected=reward_expected,
    )


def prepare_target(
    target: TargetPolicy,
    data: LoggedData,
    reward_predictions: np.ndarray | None,
    progress_factory: ProgressFactory | None = None,
) -> TargetData:
    """Compute and validate one target's distribution and its estimator input."""
    progress = progress_factory(f"scoring {target.name}", data.n_rows) if progress_factory else None
    probabilities = check_distribution(target.name, target.distribution(data, progress), data)
    return TargetData(
        name=target.name,
        description=target.describe(),
        probabilities=probabilities,
        inputs=estimator_inputs(data, probabilities, reward_predictions),
    )


def _interval_row(prefix: str, interval: Interval) -> dict[str, float]:
    return {f"{prefix}lower": interval.lower, f"{prefix}upper": interval.upper}


def _paired_normal(a: RoundTerms, b: RoundTerms, confidence: float, rows: np.ndarray | None = None) -> Interval:
    """Normal interval of ``estimate(a) - estimate(b)`` on the same rows."""
    difference = a.estimate(rows) - b.estimate(rows)
    if math.isnan(difference):
        return Interval(math.nan, math.nan, "normal", confidence)
    influence = a.influence(rows) - b.influence(rows)
    n = influence.size
    standard_error = float(influence.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return Interval(difference - z * standard_error, difference + z * standard_error, "normal", confidence)


def evaluate(
    data: LoggedData,
    targets: Sequence[TargetPolicy],
    settings: EvaluationSettings | None = None,
    *,
    reward_predictions: np.ndarray | None = None,
    progress_factory: ProgressFactory | None = None,
) -> EvaluationResult:
    """Estimate every target's value on the log, with intervals and breakdowns.

    Parameters
    ----------
    data : LoggedData
        Validated log.
    targets : sequence of TargetPolicy
        Targets with distinct names; the first is the default reference.
    settings : EvaluationSettings, optional
        Estimators, intervals and breakdowns.
    reward_predictions : numpy.ndarray, shape (n, k), optional
        Precomputed reward-model predictions aligned with the action slots.
        When None and an estimator needs them, the cross-fitted reward model
        is fitted.
    progress_factory : callable, optional
        Creates progress callbacks for long stages.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ValueError
        If target names repeat, the reference is unknown, or a target's
        distribution is invalid.

    Examples
    --------
    >>> from offline_eval.synthetic import SyntheticBandit
    >>> from offline_eval.targets import UniformRandom
    >>> bandit = SyntheticBandit(seed=0)
    >>> data = bandit.sample(2000, seed=1)
    >>> result = evaluate(data, [UniformRandom()], EvaluationSettings(interval="normal"))
    >>> snips = result.estimates.set_index("estimator").loc["snips"]
    >>> truth = bandit.true_value(bandit.uniform_policy())
    >>> bool(snips["lower"] <= truth <= snips["upper"])
    True
    """
    settings = settings or EvaluationSettings()
    if not targets:
        raise ValueError("targets must contain at least one target policy")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"target names must be unique, got {names}")
    reference = settings.reference or names[0]
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the targets {names}")
    timings: dict[str, float] = {}

    started = time.perf_counter()
    if reward_predictions is None and any(e.uses_reward_model for e in settings.estimators):
        progress = progress_factory("fitting reward model", settings.reward_model.folds) if progress_factory else None
        reward_predictions = fit_predict_cross_fitted(data, settings.reward_model, progress)
    elif reward_predictions is not None and reward_predictions.shape != data.action_index.shape:
        raise ValueError(
            f"reward_predictions must have shape {data.action_index.shape}, got {reward_predictions.shape}"
        )
    timings["reward_model"] = time.perf_counter() - started

    started = time.perf_counter()
    prepared = [prepare_target(t, data, reward_predictions, progress_factory) for t in targets]
    timings["targets"] = time.perf_counter() - started

    started = time.perf_counter()
    pairs = [(t, e) for t in prepared for e in settings.estimators]
    terms = [e.round_terms(t.inputs) for t, e in pairs]
    index_of = {(t.name, e.label): j for j, (t, e) in enumerate(pairs)}
    # The on-policy mean (every weight 1) replaces a reference whose estimate
    # is undefined because only the logged action's probability is known, as
    # for the logging policy of a log without PMFs.
    on_policy_index = len(terms)
    terms.append(RoundTerms(values=data.reward.copy()))
    replicates = None
    if settings.interval == "bootstrap":
        progress = None
        if progress_factory is not None:
            total = data.n_rows if settings.bootstrap_method == "poisson" else settings.n_resamples
            progress = progress_factory("bootstrap", total)
        replicates = bootstrap_estimates(
            terms, settings.n_resamples, settings.seed, settings.bootstrap_method, progress
        )
    timings["estimates"] = time.perf_counter() - started

    estimate_rows = _estimate_rows(pairs, terms, replicates, settings)
    diagnostics = {
        t.name: weight_diagnostics(t.inputs.weight, data.propensity, data.event_ids) for t in prepared
    }
    for t in prepared:
        if np.isnan(t.probabilities).any():
            logger.info("target %s has no full distribution: model-based estimators are undefined for it", t.name)
    bounds_by_name = _bounds(data, prepared, settings)
    prepared_by_name = {t.name: t for t in prepared}
    comparison_rows = _comparisons(
        data, pairs, terms, index_of, replicates, bounds_by_name, prepared_by_name[reference], on_policy_index, settings
    )

    started = time.perf_counter()
    reference_on_policy = _is_on_policy(prepared_by_name[reference], data)
    segment_rows = _segments(
        data, pairs, terms, index_of, reference, settings, on_policy_index if reference_on_policy else None
    )
    time_rows = _over_time(data, pairs, terms, settings)
    timings["breakdowns"] = time.perf_counter() - started

    return EvaluationResult(
        estimates=pd.DataFrame(estimate_rows),
        diagnostics=diagnostics,
        bounds=pd.DataFrame(
            [
                {"policy": name, "lower_bound": bound.lower, "upper_bound": bound.upper, "clip": clip}
                for name, (bound, clip) in bounds_by_name.items()
            ]
        ),
        comparisons=pd.DataFrame(comparison_rows),
        segments=pd.DataFrame(segment_rows),
        over_time=pd.DataFrame(time_rows),
        data_summary=data.summary(),
        settings=_settings_dict(settings),
        timings=timings,
        reference=reference,
        descriptions={t.name: t.description for t in prepared},
    )


def _estimate_rows(
    pairs: list[tuple[TargetData, Estimator]],
    terms: list[RoundTerms],
    replicates: np.ndarray | None,
    settings: EvaluationSettings,
) -> list[dict[str, Any]]:
    """Return one row per (target, estimator): estimate, interval and undefined reason."""
    rows = []
    for j, ((target, estimator), round_terms) in enumerate(zip(pairs, terms)):
        if replicates is not None:
            interval = percentile_interval(replicates[:, j], settings.confidence)
        else:
            interval = normal_interval(round_terms, settings.confidence)
        rows.append(
            {
                "policy": target.name,
                "estimator": estimator.label,
                "estimate": round_terms.estimate(),
                **_interval_row("", interval),
                "interval": interval.method,
                "undefined": round_terms.undefined or "",
            }
        )
    return rows


def _bounds(
    data: LoggedData, prepared: list[TargetData], settings: EvaluationSettings
) -> dict[str, tuple[Interval, float]]:
    """Return each target's empirical Bernstein bounds and the weight clip they used."""
    low, high = settings.reward_range or (float(data.reward.min()), float(data.reward.max()))
    result: dict[str, tuple[Interval, float]] = {}
    for t in prepared:
        weight = t.inputs.weight
        clip = settings.bound_clip or float(weight.max())
        if not weight.any():
            bound = Interval(math.nan, math.nan, "bernstein", settings.confidence)
        elif high > low:
            bound = value_bounds(data.reward, weight, (low, high), clip, settings.confidence)
        else:
            # Constant rewards: with overlap every policy's value is that constant.
            bound = Interval(low, high, "bernstein", settings.confidence)
        result[t.name] = (bound, clip)
    return result


def _comparisons(
    data: LoggedData,
    pairs: list[tuple[TargetData, Estimator]],
    terms: list[RoundTerms],
    index_of: dict[tuple[str, str], int],
    replicates: np.ndarray | None,
    bounds_by_name: dict[str, tuple[Interval, float]],
    reference: TargetData,
    on_policy_index: int,
    settings: EvaluationSettings,
) -> list[dict[str, Any]]:
    """Return the paired difference of every other target to the reference, per estimator."""
    rows = []
    reference_on_policy = _is_on_policy(reference, data)
    reference_bound = bounds_by_name[reference.name][0]
    for target, estimator in pairs:
        if target.name == reference.name:
            continue
        j = index_of[(target.name, estimator.label)]
        k = index_of[(reference.name, estimator.label)]
        reference_label = estimator.label
        if terms[k].undefined is not None and reference_on_policy:
            k = on_policy_index
            reference_label = "on-policy mean"
        difference = terms[j].estimate() - terms[k].estimate()
        if replicates is not None:
            interval = percentile_interval(replicates[:, j] - replicates[:, k], settings.confidence)
        else:
            interval = _paired_normal(terms[j], terms[k], settings.confidence)
        bound = bounds_by_name[target.name][0]
        rows.append(
            {
                "policy": target.name,
                "reference": reference.name,
                "estimator": estimator.label,
                "reference_estimator": reference_label,
                "difference": difference,
                **_interval_row("", interval),
                "interval": interval.method,
                "better_with_high_confidence": bool(bound.lower > reference_bound.upper),
                "worse_with_high_confidence": bool(bound.upper < reference_bound.lower),
            }
        )
    return rows


def _is_on_policy(target: TargetData, data: LoggedData) -> bool:
    """Return whether a target's probability of every logged action equals the logged propensity."""
    return bool(np.array_equal(target.inputs.target_probability, data.propensity))


def _settings_dict(settings: EvaluationSettings) -> dict[str, Any]:
    return {
        "estimators": [e.label for e in settings.estimators],
        "interval": settings.interval,
        "confidence": settings.confidence,
        "n_resamples": settings.n_resamples,
        "bootstrap_method": settings.bootstrap_method,
        "seed": settings.seed,
        "reward_model": {
            "folds": settings.reward_model.folds,
            "l2": settings.reward_model.l2,
            "hash_bits": settings.reward_model.hash_bits,
            "seed": settings.reward_model.seed,
        },
        "reward_range": list(settings.reward_range) if settings.reward_range else None,
        "bound_clip": settings.bound_clip,
        "segment_columns": list(settings.segment_columns),
        "time_bins": settings.time_bins,
    }


def _segments(
    data: LoggedData,
    pairs: list[tuple[TargetData, Estimator]],
    terms: list[RoundTerms],
    index_of: dict[tuple[str, str], int],
    reference: str,
    settings: EvaluationSettings,
    on_policy_index: int | None,
) -> list[dict[str, Any]]:
    rows_out: list[dict[str, Any]] = []
    for column in settings.segment_columns:
        values = data.segment_values(column)
        counts = pd.Series(values).value_counts()
        kept = set(counts.index[:MAX_SEGMENT_VALUES])
        labels = np.where(np.isin(values, list(kept)), values, "(other)")
        for value in sorted(set(labels)):
            rows = np.flatnonzero(labels == value)
            for (target, estimator), round_terms in zip(pairs, terms):
                interval = normal_interval(round_terms, settings.confidence, rows)
                k = index_of[(reference, estimator.label)]
                if terms[k].undefined is not None and on_policy_index is not None:
                    k = on_policy_index
                lift = round_terms.estimate(rows) - terms[k].estimate(rows)
                lift_interval = _paired_normal(round_terms, terms[k], settings.confidence, rows)
                rows_out.append(
                    {
                        "segment": column,
                        "value": value,
                        "rows": int(rows.size),
                        "policy": target.name,
                        "estimator": estimator.label,
                        "estimate": round_terms.estimate(rows),
                        **_interval_row("", interval),
                        "lift": lift,
                        **_interval_row("lift_", lift_interval),
                    }
                )
    return rows_out


def _over_time(
    data: LoggedData,
    pairs: list[tuple[TargetData, Estimator]],
    terms: list[RoundTerms],
    settings: EvaluationSettings,
) -> list[dict[str, Any]]:
    if settings.time_bins == 0:
        return []
    bins = min(settings.time_bins, data.n_rows)
    edges = np.linspace(0, data.n_rows, bins + 1).astype(int)
    rows_out: list[dict[str, Any]] = []
    for window in range(bins):
        rows = np.arange(edges[window], edges[window + 1])
        if rows.size == 0:
            continue
        start = float(data.timestamp[rows[0]]) if data.timestamp is not None else float(rows[0])
        end = float(data.timestamp[rows[-1]]) if data.timestamp is not None else float(rows[-1])
        for (target, estimator), round_terms in zip(pairs, terms):
            interval = normal_interval(round_terms, settings.confidence, rows)
            rows_out.append(
                {
                    "window": window,
                    "start": start,
                    "end": end,
                    "rows": int(rows.size),
                    "policy": target.name,
                    "estimator": estimator.label,
                    "estimate": round_terms.estimate(rows),
                    **_interval_row("", interval),
                }
            )
    return rows_out
