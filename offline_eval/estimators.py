"""Off-policy estimators of a target policy's value from logged data.

Notation: round ``i`` has context ``x_i``, logged action ``a_i`` chosen with
propensity ``p_i = mu(a_i | x_i)`` by the logging policy ``mu``, and reward
``r_i``. The target policy ``pi`` gives ``pi(a | x_i)``; the importance weight
is ``w_i = pi(a_i | x_i) / p_i``. A reward model ``q(x, a)`` (cross-fitted, see
:mod:`offline_eval.reward_model`) gives ``q_i = q(x_i, a_i)`` and
``qbar_i = sum_a pi(a | x_i) q(x_i, a)``.

Every estimator is a frozen dataclass of hyperparameters with one hook,
:meth:`Estimator.round_terms`, which returns per-round terms ``(v, u, d)``.
The estimate is

    V = mean(v) + sum(u) / sum(d)

with ``u`` and ``d`` absent for estimators that are plain means. The point
estimate, the normal interval (delta method on the influence terms), the
bootstrap (which re-sums ``u`` and ``d`` inside every resample, so
self-normalized estimators re-normalize there) and the segment breakdowns all
derive from these terms.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = [
    "EstimatorInput",
    "RoundTerms",
    "Estimator",
    "DirectMethod",
    "InverseProbabilityWeighting",
    "SelfNormalizedIPS",
    "DoublyRobust",
    "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust",
    "SubGaussianIPS",
    "ESTIMATORS",
    "make_estimator",
]


@dataclass(frozen=True, eq=False)
class EstimatorInput:
    """Per-round arrays an estimator needs, for one target policy.

    Parameters
    ----------
    reward : numpy.ndarray, shape (n,)
        Logged rewards ``r_i``.
    propensity : numpy.ndarray, shape (n,)
        Logging propensities ``p_i``.
    target_probability : numpy.ndarray, shape (n,)
        ``pi(a_i | x_i)``, the target's probability of the logged action.
    reward_logged : numpy.ndarray, shape (n,), optional
        Reward-model prediction for the logged action, ``q_i``.
    reward_expected : numpy.ndarray, shape (n,), optional
        ``qbar_i``, the reward model averaged over the target's distribution.
        ``NaN`` in a row where the target's full distribution is unknown.
    """

    reward: np.ndarray
    propensity: np.ndarray
    target_probability: np.ndarray
    reward_logged: np.ndarray | None = None
    reward_expected: np.ndarray | None = None

    @property
    def weight(self) -> np.ndarray:
        """Importance weights ``w_i = pi(a_i | x_i) / p_i``."""
        return self.target_probability / self.propensity

    @property
    def n_rows(self) -> int:
        """Number of rounds."""
        return int(self.reward.shape[0])

    def subset(self, rows: np.ndarray) -> EstimatorInput:
        """Return the input restricted to some rows."""
        return EstimatorInput(
            reward=self.reward[rows],
            propensity=self.propensity[rows],
            target_probability=self.target_probability[rows],
            reward_logged=None if self.reward_logged is None else self.reward_logged[rows],
            reward_expected=None if self.reward_expected is None else self.reward_expected[rows],
        )


@dataclass(frozen=True, eq=False)
class RoundTerms:
    """Per-round terms: ``V = mean(values) + sum(numerator) / sum(denominator)``.

    ``undefined`` is the reason when the estimate does not exist for this
    input (no overlap, no reward model), and the arrays are then all-NaN.
    ``influence_values``, when set, are per-round terms whose spread is used
    as the estimate's spread: intervals use them, centred on the estimate.
    """

    values: np.ndarray
    numerator: np.ndarray | None = None
    denominator: np.ndarray | None = None
    undefined: str | None = None
    influence_values: np.ndarray | None = None

    def estimate(self, rows: np.ndarray | None = None) -> float:
        """Return the estimate over all rows or a subset of them (NaN when undefined)."""
        if self.undefined is not None:
            return math.nan
        values = self.values if rows is None else self.values[rows]
        if values.size == 0:
            return math.nan
        result = float(values.mean())
        if self.numerator is not None and self.denominator is not None:
            numerator = self.numerator if rows is None else self.numerator[rows]
            denominator = self.denominator if rows is None else self.denominator[rows]
            total = float(denominator.sum())
            if total == 0.0:
                return math.nan
            result += float(numerator.sum()) / total
        return result

    def influence(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the influence terms whose mean's standard error is the estimate's (delta method)."""
        if self.influence_values is not None:
            return self.influence_values if rows is None else self.influence_values[rows]
        values = self.values if rows is None else self.values[rows]
        if self.numerator is None or self.denominator is None:
            return values
        numerator = self.numerator if rows is None else self.numerator[rows]
        denominator = self.denominator if rows is None else self.denominator[rows]
        mean_denominator = float(denominator.mean())
        if mean_denominator == 0.0:
            return np.full_like(values, np.nan)
        ratio = float(numerator.sum()) / float(denominator.sum())
        return values + (numerator - ratio * denominator) / mean_denominator


def _undefined(n: int, reason: str) -> RoundTerms:
    return RoundTerms(values=np.full(n, np.nan), undefined=reason)


NO_OVERLAP = (
    "undefined: the target gives zero probability to every logged action (no overlap with the logging policy),"
    " so the log carries no information about it"
)
NO_MODEL = "undefined: needs the reward model's predictions and the target's full distribution"


def _reward_model_terms(inputs: EstimatorInput) -> tuple[np.ndarray, np.ndarray] | None:
    if inputs.reward_logged is None or inputs.reward_expected is None:
        return None
    if not np.isfinite(inputs.reward_expected).all():
        return None
    return inputs.reward_logged, inputs.reward_expected


@dataclass(frozen=True)
class Estimator(ABC):
    """Base of all estimators: subclasses implement :meth:`round_terms`.

    Class attributes ``key`` (short name used on the command line and in
    reports), ``uses_reward_model`` and ``self_normalized`` describe it.
    """

    key: ClassVar[str] = ""
    uses_reward_model: ClassVar[bool] = False
    self_normalized: ClassVar[bool] = False

    @abstractmethod
    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        """Return the per-round terms of this estimator for one target."""

    def estimate(self, inputs: EstimatorInput) -> float:
        """Return the point estimate (NaN when undefined)."""
        return self.round_terms(inputs).estimate()

    @property
    def label(self) -> str:
        """Report key with non-default hyperparameters, for example ``ips(clip=100)``."""
        return self.key


@dataclass(frozen=True)
class DirectMethod(Estimator):
    r"""Direct method (DM): average the reward model over the target's distribution.

    .. math:: \hat V_{DM} = \frac1n \sum_i \sum_a \pi(a \mid x_i)\, \hat q(x_i, a)

    Assumptions: the reward model is correct; no overlap is needed. Weakness:
    biased whenever the model is wrong. The model is cross-fitted, so a row is
    scored by a model that did not see it.

    Intervals: the spread of ``qbar_i`` alone would ignore the reward model's
    estimation error, so DM's intervals use the doubly robust terms
    ``qbar_i + w_i (r_i - q_i)`` as influence terms, centred on the DM
    estimate. For a correctly specified model with a cell per context and
    action, DM and DR have the same asymptotic variance. For a misspecified
    model the interval still omits DM's bias. Where the log has no overlap at
    all, the weights vanish and only the spread of ``qbar_i`` remains.

    Source: M. Dudik, J. Langford, L. Li, "Doubly Robust Policy Evaluation
    and Learning", ICML 2011 (as the baseline it improves on).
    """

    key: ClassVar[str] = "dm"
    uses_reward_model: ClassVar[bool] = True

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        model = _reward_model_terms(inputs)
        if model is None:
            return _undefined(inputs.n_rows, NO_MODEL)
        q_logged, q_expected = model
        return RoundTerms(
            values=q_expected.copy(),
            influence_values=q_expected + inputs.weight * (inputs.reward - q_logged),
        )


@dataclass(frozen=True)
class InverseProbabilityWeighting(Estimator):
    r"""Inverse propensity scoring (IPS), with optional weight clipping.

    .. math:: \hat V_{IPS} = \frac1n \sum_i \min(w_i, M)\, r_i

    Assumptions: every action the target can take had a positive logging
    probability (overlap) and logged propensities are exact. Unbiased when
    ``clip`` is None; clipping at ``M`` trades a downward bias (for
    nonnegative rewards) for variance. Weakness: variance grows with the
    weights, so one row with a tiny propensity can dominate.

    Source: D. G. Horvitz, D. J. Thompson, "A Generalization of Sampling
    Without Replacement from a Finite Universe", JASA 1952; clipping:
    L. Bottou et al., "Counterfactual Reasoning and Learning Systems", JMLR 2013.

    Parameters
    ----------
    clip : float, optional
        Largest weight ``M`` kept; None keeps weights as they are.
    """

    key: ClassVar[str] = "ips"
    clip: float | None = None

    def __post_init__(self) -> None:
        if self.clip is not None and not (self.clip > 0 and math.isfinite(self.clip)):
            raise ValueError(f"clip must be a positive finite number, got {self.clip!r}")

    @property
    def label(self) -> str:
        return self.key if self.clip is None else f"{self.key}(clip={self.clip:g})"

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        weight = inputs.weight
        if not weight.any():
            return _undefined(inputs.n_rows, NO_OVERLAP)
        if self.clip is not None:
            weight = np.minimum(weight, self.clip)
        return RoundTerms(values=weight * inputs.reward)


@dataclass(frozen=True)
class SelfNormalizedIPS(Estimator):
    r"""Self-normalized IPS (SNIPS), a ratio estimator.

    .. math:: \hat V_{SNIPS} = \frac{\sum_i w_i r_i}{\sum_i w_i}

    Assumptions: overlap. Biased for finite ``n`` but consistent, bounded by
    the reward range, and usually of much lower variance than IPS. Undefined
    when every weight is zero.

    Source: A. Swaminathan, T. Joachims, "The Self-Normalized Estimator for
    Counterfactual Learning", NeurIPS 2015.
    """

    key: ClassVar[str] = "snips"
    self_normalized: ClassVar[bool] = True

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        weight = inputs.weight
        if not weight.any():
            return _undefined(inputs.n_rows, NO_OVERLAP)
        return RoundTerms(values=np.zeros(inputs.n_rows), numerator=weight * inputs.reward, denominator=weight)


@dataclass(frozen=True)
class DoublyRobust(Estimator):
    r"""Doubly robust (DR) estimator.

    .. math:: \hat V_{DR} = \frac1n \sum_i \Big[\bar q_i + w_i\,(r_i - \hat q(x_i, a_i))\Big]

    Assumptions: unbiased if either the propensities are exact (with overlap)
    or the reward model is correct. Variance is that of IPS on the model's
    residuals. With no overlap at all it reduces to DM, and the diagnostics
    warn about it.

    Source: M. Dudik, J. Langford, L. Li, "Doubly Robust Policy Evaluation
    and Learning", ICML 2011.
    """

    key: ClassVar[str] = "dr"
    uses_reward_model: ClassVar[bool] = True

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        model = _reward_model_terms(inputs)
        if model is None:
            return _undefined(inputs.n_rows, NO_MODEL)
        q_logged, q_expected = model
        return RoundTerms(values=q_expected + inputs.weight * (inputs.reward - q_logged))


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(Estimator):
    r"""Self-normalized doubly robust (SNDR) estimator.

    .. math:: \hat V_{SNDR} = \frac1n \sum_i \bar q_i + \frac{\sum_i w_i (r_i - \hat q_i)}{\sum_i w_i}

    Assumptions as DR; the correction term is normalized by the sum of the
    weights, which bounds it and lowers variance at the price of a small
    finite-sample bias. Undefined when every weight is zero.

    Source: N. Kallus, M. Uehara, "Intrinsically Efficient, Stable, and
    Bounded Off-Policy Evaluation for Reinforcement Learning", NeurIPS 2019
    (the weight-normalized DR for the contextual-bandit case).
    """

    key: ClassVar[str] = "sndr"
    uses_reward_model: ClassVar[bool] = True
    self_normalized: ClassVar[bool] = True

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        model = _reward_model_terms(inputs)
        if model is None:
            return _undefined(inputs.n_rows, NO_MODEL)
        weight = inputs.weight
        if not weight.any():
            return _undefined(inputs.n_rows, NO_OVERLAP)
        q_logged, q_expected = model
        return RoundTerms(values=q_expected.copy(), numerator=weight * (inputs.reward - q_logged), denominator=weight)


@dataclass(frozen=True)
class SwitchDoublyRobust(Estimator):
    r"""Switch doubly robust estimator: drop the IPS correction where weights are large.

    .. math:: \hat V = \frac1n \sum_i \Big[\bar q_i + w_i (r_i - \hat q_i)\,
              \mathbb 1\{w_i \le \tau\}\Big]

    Rows whose weight exceeds ``tau`` rely on the reward model alone, which
    caps the variance; ``tau = inf`` is DR and ``tau = 0`` is DM.
    Assumptions: as DR on the rows kept, and a correct reward model on the
    switched rows. Weakness: on the switched rows the bias is the model's
    bias. The default ``tau = 100`` is a fixed choice, not the paper's
    data-driven one.

    Source: Y.-X. Wang, A. Agarwal, M. Dudik, "Optimal and Adaptive
    Off-policy Evaluation in Contextual Bandits", ICML 2017. This is the form
    that needs only the logged action's propensity.

    Parameters
    ----------
    tau : float
        Weight threshold; rows with ``w_i > tau`` drop the correction.
    """

    key: ClassVar[str] = "switch-dr"
    uses_reward_model: ClassVar[bool] = True
    tau: float = 100.0

    def __post_init__(self) -> None:
        if not (self.tau >= 0) or math.isnan(self.tau):
            raise ValueError(f"tau must be >= 0, got {self.tau!r}")

    @property
    def label(self) -> str:
        return f"{self.key}(tau={self.tau:g})"

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        model = _reward_model_terms(inputs)
        if model is None:
            return _undefined(inputs.n_rows, NO_MODEL)
        q_logged, q_expected = model
        weight = inputs.weight
        kept = weight <= self.tau
        return RoundTerms(values=q_expected + np.where(kept, weight * (inputs.reward - q_logged), 0.0))


@dataclass(frozen=True)
class SubGaussianIPS(Estimator):
    r"""Sub-Gaussian IPS: harmonic smoothing of heavy-tailed importance weights.

    .. math:: \hat V_\lambda = \frac1n \sum_i \frac{w_i}{(1-\lambda) + \lambda w_i}\, r_i

    The smoothed weight is at most ``1 / lambda``, so one row with a tiny
    propensity cannot dominate. With ``lambda = 0`` this is IPS. When
    ``lam`` is None, ``lambda = sqrt(log(1/delta) / (3 d n))`` where ``d`` is
    the plug-in estimate ``mean(w^2)`` of the second moment of the weights,
    so ``lambda`` shrinks as ``n`` grows. Assumptions: overlap and bounded
    nonnegative rewards. Weakness: a downward bias that shrinks as ``n``
    grows.

    NOTE: the data-driven ``lambda`` follows the form of the paper's
    high-probability choice; its constant was not checked against the paper.

    Source: A. M. Metelli, A. Russo, M. Restelli, "Subgaussian and
    Differentiable Importance Sampling for Off-Policy Evaluation and
    Learning", NeurIPS 2021.

    Parameters
    ----------
    lam : float, optional
        Smoothing ``lambda`` in [0, 1]; None chooses it from the data.
    delta : float
        Confidence level used by the data-driven ``lambda``.
    """

    key: ClassVar[str] = "sg-ips"
    lam: float | None = None
    delta: float = 0.05

    def __post_init__(self) -> None:
        if self.lam is not None and not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam!r}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")

    @property
    def label(self) -> str:
        return self.key if self.lam is None else f"{self.key}(lambda={self.lam:g})"

    def smoothing(self, weight: np.ndarray) -> float:
        """Return ``lambda`` for these weights (the fixed ``lam`` when set)."""
        if self.lam is not None:
            return self.lam
        second_moment = float(np.mean(weight**2))
        if second_moment == 0.0:
            return 0.0
        return min(1.0, math.sqrt(math.log(1.0 / self.delta) / (3.0 * second_moment * weight.size)))

    def round_terms(self, inputs: EstimatorInput) -> RoundTerms:
        weight = inputs.weight
        if not weight.any():
            return _undefined(inputs.n_rows, NO_OVERLAP)
        lam = self.smoothing(weight)
        smoothed = weight / ((1.0 - lam) + lam * weight)
        return RoundTerms(values=smoothed * inputs.reward)


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.key: cls
    for cls in (
        DirectMethod,
        InverseProbabilityWeighting,
        SelfNormalizedIPS,
        DoublyRobust,
        SelfNormalizedDoublyRobust,
        SwitchDoublyRobust,
        SubGaussianIPS,
    )
}
"""Registered estimators by report key."""


def make_estimator(spec: str) -> Estimator:
    """Build an estimator from a key with optional parameters.

    Examples: ``ips``, ``ips:clip=50``, ``switch-dr:tau=20``, ``sg-ips:lam=0.1``.

    Raises
    ------
    ValueError
        If the key is unknown or a parameter is unknown or invalid.
    """
    key, _, params = spec.strip().partition(":")
    cls = ESTIMATORS.get(key)
    if cls is None:
        raise ValueError(f"unknown estimator {key!r}: use one of {', '.join(ESTIMATORS)}")
    kwargs: dict[str, float] = {}
    if params:
        allowed = {name for name in cls.__dataclass_fields__}
        for item in params.split(","):
            name, sep, value = item.partition("=")
            if not sep or name not in allowed:
                raise ValueError(
                    f"estimator {key!r} parameter {item!r} is invalid: use NAME=VALUE with NAME in {sorted(allowed)}"
                )
            try:
                kwargs[name] = float(value)
            except ValueError as error:
                raise ValueError(f"estimator {key!r} parameter {name} must be a number, got {value!r}") from error
    return cls(**kwargs)
