"""Check offline evaluation against online simulation on the same scenario.

The experiment has three steps:

1. simulate a logging policy (uniform random, say) and write its event log
   in the project's own schema;
2. estimate offline, from that log, the value of other policies with
   :func:`offline_eval.evaluate.evaluate`, exactly as ``microbandit evaluate``
   does;
3. simulate those policies online on other seeds and compare each offline
   interval with the online mean reward and its interval across seeds.

Two ground truths are reported. ``online_mean`` is what the policy earned
when it ran on other visitors, so it also carries sampling noise.
``truth_on_log`` is the exact expected reward of the policy on the logged
visitors under the scenario's hidden model: the quantity an unbiased
off-policy estimator estimates.

Offline targets are built from policy specs: ``uniform`` and ``baseline``
(the scenario's rules) map to the offline targets of the same name,
``oracle`` becomes a per-row distribution read from the hidden model, and a
VW preset becomes a :class:`~offline_eval.targets.CounterfactualVW` trained
on the log in time order. A learning policy's counterfactual value is not
its online value (online it learns from its own choices, offline from the
logging policy's), so agreement is expected only for policies that do not
learn.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bandit.settings import JoinSettings
from offline_eval.data import LoggedData
from offline_eval.estimators import make_estimator
from offline_eval.evaluate import EvaluationSettings, evaluate
from offline_eval.readers import read_event_log
from offline_eval.targets import BaselineTarget, CounterfactualVW, FixedDistribution, TargetPolicy, UniformRandom
from simulations.policies import PolicySpec
from simulations.runner import RunSettings, run_simulation
from simulations.scenario import Scenario, VisitorStream

__all__ = ["AgreementSettings", "offline_target", "run_agreement", "truth_on_log", "rounds_of_log"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgreementSettings:
    """Settings of :func:`run_agreement`.

    Parameters
    ----------
    rounds : int
        Visitors of the logged run and of each online run.
    log_seed : int
        Seed of the logged run.
    online_seeds : tuple of int
        Seeds of the online runs; choose them apart from ``log_seed`` so the
        two sides meet different visitors.
    interval_s : float
        Simulated seconds between visitors.
    estimators : tuple of str
        Estimator keys of ``microbandit evaluate``.
    confidence : float
        Level of the offline and online intervals.
    n_resamples : int
        Bootstrap resamples of the offline intervals.
    """

    rounds: int = 20_000
    log_seed: int = 0
    online_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    interval_s: float = 10.0
    estimators: tuple[str, ...] = ("ips", "snips", "dr")
    confidence: float = 0.95
    n_resamples: int = 1000

    def __post_init__(self) -> None:
        if self.log_seed in self.online_seeds:
            raise ValueError(
                f"online_seeds {list(self.online_seeds)} must not contain log_seed {self.log_seed}: the online runs "
                "should meet other visitors than the log"
            )
        if len(self.online_seeds) < 2:
            raise ValueError(f"online_seeds needs at least 2 seeds for an interval, got {list(self.online_seeds)}")
        if not self.estimators:
            raise ValueError("estimators must name at least one estimator")


def rounds_of_log(data: LoggedData, seed: int, prefix: str = "") -> np.ndarray:
    """Return the simulation round of every logged row, read from its event id ``[PREFIX-]sSEED-rROUND``."""
    if data.event_ids is None:
        raise ValueError(f"the log {data.source} has no event ids, so its rows cannot be matched to rounds")
    head = f"{prefix}-s{seed}-r" if prefix else f"s{seed}-r"
    rounds = np.empty(data.n_rows, dtype=np.int64)
    for row, event_id in enumerate(data.event_ids):
        if not str(event_id).startswith(head):
            raise ValueError(f"row {row}: event id {event_id!r} is not of seed {seed} (expected {head}ROUND)")
        rounds[row] = int(str(event_id)[len(head):])
    return rounds


def _expected_matrix(data: LoggedData, stream: VisitorStream, rounds: np.ndarray) -> np.ndarray:
    """Return the hidden expected reward of every (row, action slot) of the log; 0 at padding."""
    columns = np.array([stream.action_index.get(action.id, -1) for action in data.actions])
    slots = data.action_index
    unknown = sorted({data.actions[i].id for i in np.unique(slots[slots >= 0]) if columns[i] < 0})
    if unknown:
        raise ValueError(f"the log offers actions {unknown[:5]} that the scenario does not have")
    expected = np.zeros(slots.shape)
    valid = slots >= 0
    rows = np.broadcast_to(rounds[:, None], slots.shape)
    expected[valid] = stream.expected[rows[valid], columns[slots[valid]]]
    return expected


def truth_on_log(probabilities: np.ndarray, data: LoggedData, stream: VisitorStream, rounds: np.ndarray) -> float:
    """Return a target's exact expected reward on the logged visitors: ``mean_i sum_a pi(a|x_i) E[r|x_i, a]``."""
    return float(np.mean(np.sum(probabilities * _expected_matrix(data, stream, rounds), axis=1)))


def offline_target(
    spec: PolicySpec, scenario: Scenario, data: LoggedData, stream: VisitorStream, rounds: np.ndarray
) -> TargetPolicy:
    """Return the offline target that plays ``spec`` on the logged rows."""
    if spec.kind == "uniform":
        return UniformRandom(name=spec.name)
    if spec.kind == "baseline":
        return BaselineTarget(rules=scenario.baseline_rules(), name=spec.name)
    if spec.kind == "oracle":
        expected = _expected_matrix(data, stream, rounds)
        expected[data.action_index < 0] = -np.inf
        matrix = np.zeros(expected.shape)
        matrix[np.arange(data.n_rows), np.argmax(expected, axis=1)] = 1.0
        return FixedDistribution(matrix, name=spec.name)
    settings = spec.settings(seed=0, join=JoinSettings(), interactions=scenario.interactions)
    return CounterfactualVW(settings=settings, name=spec.name)


def run_agreement(
    scenario: Scenario,
    logging_policy: PolicySpec,
    targets: Sequence[PolicySpec],
    settings: AgreementSettings,
    *,
    log_root: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Simulate a logging policy, evaluate targets offline on its log, and simulate the targets online.

    Parameters
    ----------
    scenario : Scenario
        The environment.
    logging_policy : PolicySpec
        The policy whose event log is evaluated on; it must explore (every
        action with positive probability) for the targets to be supported.
    targets : sequence of PolicySpec
        Policies to evaluate; distinct names, none equal to the logging
        policy's.
    settings : AgreementSettings
        Rounds, seeds, estimators and confidence.
    log_root : path, optional
        Where the event log is written; a temporary directory otherwise.

    Returns
    -------
    pandas.DataFrame
        One row per (target, estimator): ``offline_estimate``,
        ``offline_low``, ``offline_high``, ``truth_on_log``, ``online_mean``,
        ``online_low``, ``online_high``, ``online_in_offline_interval``,
        ``truth_in_offline_interval``, ``intervals_overlap`` and ``learns``
        (whether the target is a learning VW policy).
    """
    names = [spec.name for spec in targets]
    if not names:
        raise ValueError("targets must name at least one policy")
    if len(set(names)) != len(names) or logging_policy.name in names:
        raise ValueError(f"target names must be distinct and differ from the logging policy's, got {names}")

    with tempfile.TemporaryDirectory(prefix="microbandit-agreement-") as scratch:
        root = Path(log_root) if log_root is not None else Path(scratch)
        run_settings = RunSettings(rounds=settings.rounds, seeds=(settings.log_seed,), interval_s=settings.interval_s)
        run_simulation(scenario, [logging_policy], run_settings, log_root=root)
        data = read_event_log(root / logging_policy.name / f"seed-{settings.log_seed}" / "events")

    stream = scenario.stream(settings.log_seed, settings.rounds)
    rounds = rounds_of_log(data, settings.log_seed)
    offline_targets = [offline_target(spec, scenario, data, stream, rounds) for spec in targets]
    evaluation = evaluate(
        data,
        offline_targets,
        EvaluationSettings(
            estimators=tuple(make_estimator(key) for key in settings.estimators),
            confidence=settings.confidence,
            n_resamples=settings.n_resamples,
            seed=settings.log_seed,
            time_bins=0,
        ),
    )
    truths = {
        target.name: truth_on_log(target.distribution(data), data, stream, rounds)
        for target in offline_targets
        if not isinstance(target, CounterfactualVW)
    }

    online = run_simulation(
        scenario,
        list(targets),
        RunSettings(rounds=settings.rounds, seeds=tuple(settings.online_seeds), interval_s=settings.interval_s),
    )
    rows = []
    for record in evaluation.estimates.to_dict("records"):
        name = record["policy"]
        interval = online.interval(name, "mean_reward", settings.confidence)
        low, high = float(record["lower"]), float(record["upper"])
        truth = truths.get(name, float("nan"))
        rows.append(
            {
                "target": name,
                "estimator": record["estimator"],
                "offline_estimate": float(record["estimate"]),
                "offline_low": low,
                "offline_high": high,
                "truth_on_log": truth,
                "online_mean": interval.mean,
                "online_low": interval.low,
                "online_high": interval.high,
                "online_in_offline_interval": bool(low <= interval.mean <= high),
                "truth_in_offline_interval": bool(low <= truth <= high),
                "intervals_overlap": bool(low <= interval.high and interval.low <= high),
                "learns": next(spec for spec in targets if spec.name == name).kind == "vw",
            }
        )
    logger.info("evaluated %d targets on %d logged rows of %s", len(targets), data.n_rows, logging_policy.name)
    return pd.DataFrame(rows)
