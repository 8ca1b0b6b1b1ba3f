"""Off-policy evaluation of bandit policies on logged data.

The package reads logs (the event log, plain tables, the Open Bandit
Dataset sample) into a validated :class:`LoggedData`. It scores target
policies on them: fixed distributions, VW checkpoints, VW configurations
trained counterfactually, the baseline, uniform random and the logging
policy. It estimates their values with DM, IPS, SNIPS, DR, SNDR, switch-DR
and sub-Gaussian IPS, and reports intervals, diagnostics, paired comparisons
and breakdowns by segment and time. The ``microbandit evaluate`` command is :mod:`offline_eval.cli`.
"""

from offline_eval.data import LoggedData
from offline_eval.diagnostics import WeightDiagnostics, weight_diagnostics
from offline_eval.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    Estimator,
    EstimatorInput,
    InverseProbabilityWeighting,
    RoundTerms,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SubGaussianIPS,
    SwitchDoublyRobust,
    make_estimator,
)
from offline_eval.evaluate import EvaluationResult, EvaluationSettings, evaluate
from offline_eval.intervals import (
    Interval,
    bootstrap_estimates,
    empirical_bernstein_bounds,
    normal_interval,
    percentile_interval,
    value_bounds,
)
from offline_eval.readers import read_event_log, read_log, read_table
from offline_eval.reward_model import RewardModelSettings, fit_predict_cross_fitted
from offline_eval.targets import (
    ActionPositionDistribution,
    BaselineTarget,
    CheckpointTarget,
    CounterfactualVW,
    FixedDistribution,
    LoggingPolicy,
    TargetPolicy,
    UniformRandom,
)

__all__ = [
    "LoggedData",
    "WeightDiagnostics",
    "weight_diagnostics",
    "ESTIMATORS",
    "Estimator",
    "EstimatorInput",
    "RoundTerms",
    "DirectMethod",
    "InverseProbabilityWeighting",
    "SelfNormalizedIPS",
    "DoublyRobust",
    "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust",
    "SubGaussianIPS",
    "make_estimator",
    "EvaluationSettings",
    "EvaluationResult",
    "evaluate",
    "Interval",
    "bootstrap_estimates",
    "normal_interval",
    "percentile_interval",
    "empirical_bernstein_bounds",
    "value_bounds",
    "read_event_log",
    "read_table",
    "read_log",
    "RewardModelSettings",
    "fit_predict_cross_fitted",
    "TargetPolicy",
    "UniformRandom",
    "LoggingPolicy",
    "FixedDistribution",
    "ActionPositionDistribution",
    "BaselineTarget",
    "CheckpointTarget",
    "CounterfactualVW",
]
