"""Estimators against ground truth from a seeded synthetic bandit, and edge cases of real logs."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from bandit import Action
from offline_eval.data import LoggedData
from offline_eval.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    EstimatorInput,
    InverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SubGaussianIPS,
    SwitchDoublyRobust,
    make_estimator,
)
from offline_eval.evaluate import EvaluationSettings, estimator_inputs, evaluate
from offline_eval.intervals import bootstrap_estimates, normal_interval, percentile_interval
from offline_eval.reward_model import RewardModelSettings, fit_predict_cross_fitted
from offline_eval.synthetic import SyntheticBandit
from offline_eval.targets import FixedDistribution, UniformRandom

ALL_ESTIMATORS = (
    DirectMethod(),
    InverseProbabilityWeighting(),
    SelfNormalizedIPS(),
    DoublyRobust(),
    SelfNormalizedDoublyRobust(),
    SwitchDoublyRobust(tau=10.0),
    SubGaussianIPS(),
)
BANDIT = SyntheticBandit(seed=1)
POLICIES = {"greedy": BANDIT.greedy_policy(0.1), "uniform": BANDIT.uniform_policy(), "logging": BANDIT.logging_policy}
# Absolute tolerance on a value in [0, 1] from 20,000 rows: about 3.5 standard
# errors of IPS for the greedy target, the noisiest estimator here.
TOLERANCE = 0.03


def test_every_estimator_near_ground_truth():
    data = BANDIT.sample(20_000, seed=5)
    targets = [BANDIT.target(policy, data, name) for name, policy in POLICIES.items()]
    result = evaluate(data, targets, EvaluationSettings(estimators=ALL_ESTIMATORS, interval="normal", time_bins=0))
    for row in result.estimates.to_dict(orient="records"):
        truth = BANDIT.true_value(POLICIES[row["policy"]])
        assert abs(row["estimate"] - truth) < TOLERANCE, (row["policy"], row["estimator"], row["estimate"], truth)


def test_intervals_cover_truth_over_200_seeds():
    """Bootstrap and normal 95% intervals cover the true value in at least 90% of 200 logs."""
    n_rows, n_seeds = 1000, 200
    truths = {name: BANDIT.true_value(policy) for name, policy in POLICIES.items() if name != "logging"}
    hits = {(kind, name, e.label): 0 for kind in ("bootstrap", "normal") for name in truths for e in ALL_ESTIMATORS}
    for seed in range(n_seeds):
        data = BANDIT.sample(n_rows, seed=10_000 + seed)
        predictions = fit_predict_cross_fitted(data, RewardModelSettings(folds=2, seed=seed))
        cells = BANDIT.cells_of(data)
        terms, labels = [], []
        for name in truths:
            inputs = estimator_inputs(data, POLICIES[name][cells], predictions)
            for estimator in ALL_ESTIMATORS:
                terms.append(estimator.round_terms(inputs))
                labels.append((name, estimator.label))
        replicates = bootstrap_estimates(terms, n_resamples=200, seed=seed)
        for j, ((name, label), round_terms) in enumerate(zip(labels, terms)):
            for kind, interval in (
                ("bootstrap", percentile_interval(replicates[:, j])),
                ("normal", normal_interval(round_terms)),
            ):
                hits[(kind, name, label)] += interval.lower <= truths[name] <= interval.upper
    coverage = {key: count / n_seeds for key, count in hits.items()}
    low = {key: value for key, value in coverage.items() if value < 0.90}
    assert not low, f"coverage below 90%: {low}"


def test_equal_seeds_give_equal_results():
    data = BANDIT.sample(500, seed=3)
    targets = [BANDIT.target(POLICIES["greedy"], data, "greedy")]
    settings = EvaluationSettings(estimators=ALL_ESTIMATORS, n_resamples=100, seed=7)
    first = evaluate(data, targets, settings).estimates
    second = evaluate(data, targets, settings).estimates
    pd.testing.assert_frame_equal(first, second)


def _log(propensity, reward, logged_slot, n_actions=2):
    n = len(reward)
    return LoggedData.from_arrays(
        contexts=pd.DataFrame({"user.device": ["mobile" if i % 2 else "desktop" for i in range(n)]}),
        actions=[Action(f"a{k}", {}) for k in range(n_actions)],
        action_index=np.tile(np.arange(n_actions, dtype=np.int32), (n, 1)),
        logged_slot=np.asarray(logged_slot),
        propensity=np.asarray(propensity, dtype=float),
        reward=np.asarray(reward, dtype=float),
    )


def test_tiny_propensity_dominates_and_is_reported():
    rng = np.random.default_rng(0)
    n = 2000
    slot = rng.integers(0, 2, size=n)
    reward = (rng.random(n) < 0.3).astype(float)
    propensity = np.full(n, 0.5)
    propensity[17] = 1e-6
    reward[17] = 1.0
    data = _log(propensity, reward, slot)
    target = np.zeros((n, 2))
    target[np.arange(n), slot] = 0.5
    target[np.arange(n), 1 - slot] = 0.5
    settings = EvaluationSettings(estimators=ALL_ESTIMATORS, interval="normal")
    result = evaluate(data, [FixedDistribution(target, name="half")], settings)
    diagnostics = result.diagnostics["half"]
    assert diagnostics.max_weight_row == 17
    assert diagnostics.max_weight == pytest.approx(5e5)
    assert diagnostics.max_weight_share > 0.99
    assert any("row 17" in w and "dominates" in w for w in diagnostics.warnings)
    assert any("poor support" in w for w in diagnostics.warnings)
    estimates = result.estimates.set_index("estimator")["estimate"]
    assert estimates["ips"] > 100.0  # one row of weight 5e5 swamps the mean
    assert 0.0 <= estimates["snips"] <= 1.0
    assert estimates["sg-ips"] < estimates["ips"]  # smoothing shrinks the outlier's weight


def test_zero_overlap_is_nan_with_reason():
    n = 400
    rng = np.random.default_rng(1)
    data = _log(np.full(n, 0.9), (rng.random(n) < 0.5).astype(float), np.zeros(n, int))
    target = np.tile([0.0, 1.0], (n, 1))  # only the action the log never chose
    settings = EvaluationSettings(estimators=ALL_ESTIMATORS, n_resamples=50)
    result = evaluate(data, [FixedDistribution(target, name="never")], settings)
    rows = result.estimates.set_index("estimator")
    for key in ("ips", "snips", "sndr", "sg-ips"):
        assert math.isnan(rows.loc[key, "estimate"]), key
        assert math.isnan(rows.loc[key, "lower"]), key
        assert "zero probability to every logged action" in rows.loc[key, "undefined"], key
    assert any(w.startswith("no overlap") for w in result.diagnostics["never"].warnings)
    assert result.diagnostics["never"].zero_support_share == 1.0


@pytest.mark.parametrize("value", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("interval", ["bootstrap", "normal"])
def test_constant_rewards_give_zero_width_not_negative(value, interval):
    n = 300
    rng = np.random.default_rng(2)
    data = _log(np.full(n, 0.5), np.full(n, value), rng.integers(0, 2, size=n))
    settings = EvaluationSettings(estimators=ALL_ESTIMATORS, interval=interval, n_resamples=100)
    result = evaluate(data, [UniformRandom(), BANDIT_FREE_FIRST], settings)
    for row in result.estimates.to_dict(orient="records"):
        assert row["upper"] - row["lower"] >= 0.0, row
    snips = result.estimates.set_index(["policy", "estimator"]).loc[("uniform", "snips")]
    assert snips["estimate"] == pytest.approx(value)
    # The bootstrap sums float32 products, hence the 1e-6 allowance.
    assert snips["upper"] - snips["lower"] == pytest.approx(0.0, abs=1e-6)
    assert result.bounds["lower_bound"].notna().all()


BANDIT_FREE_FIRST = FixedDistribution(np.tile([1.0, 0.0], (300, 1)), name="first")


def test_ips_clip_lowers_estimate_for_nonnegative_rewards():
    inputs = EstimatorInput(
        reward=np.array([1.0, 1.0, 0.0]),
        propensity=np.array([0.01, 0.5, 0.5]),
        target_probability=np.array([1.0, 1.0, 0.0]),
    )
    assert InverseProbabilityWeighting().estimate(inputs) == pytest.approx((100 + 2) / 3)
    assert InverseProbabilityWeighting(clip=10).estimate(inputs) == pytest.approx((10 + 2) / 3)


def test_switch_dr_extremes_equal_dr_and_dm():
    data = BANDIT.sample(800, seed=11)
    inputs = estimator_inputs(data, POLICIES["greedy"][BANDIT.cells_of(data)], fit_predict_cross_fitted(data))
    assert SwitchDoublyRobust(tau=math.inf).estimate(inputs) == pytest.approx(DoublyRobust().estimate(inputs))
    assert SwitchDoublyRobust(tau=0.0).estimate(inputs) == pytest.approx(DirectMethod().estimate(inputs))


def test_subgaussian_lambda_zero_is_ips():
    data = BANDIT.sample(800, seed=12)
    inputs = estimator_inputs(data, POLICIES["greedy"][BANDIT.cells_of(data)], None)
    assert SubGaussianIPS(lam=0.0).estimate(inputs) == pytest.approx(InverseProbabilityWeighting().estimate(inputs))
    assert 0.0 < SubGaussianIPS().smoothing(inputs.weight) < 0.1


def test_model_based_estimators_undefined_without_model():
    data = BANDIT.sample(200, seed=13)
    inputs = estimator_inputs(data, POLICIES["uniform"][BANDIT.cells_of(data)], None)
    for estimator in (DirectMethod(), DoublyRobust(), SelfNormalizedDoublyRobust(), SwitchDoublyRobust()):
        terms = estimator.round_terms(inputs)
        assert terms.undefined is not None
        assert "reward model" in terms.undefined
        assert math.isnan(terms.estimate())


@pytest.mark.parametrize("key", sorted(ESTIMATORS))
def test_estimator_conformance(key):
    estimator = make_estimator(key)
    cls = type(estimator)
    assert cls.key == key
    assert dataclasses.is_dataclass(estimator)
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimator.extra = 1  # type: ignore[attr-defined]
    doc = cls.__doc__ or ""
    assert "Source:" in doc
    assert "Assumptions" in doc
    assert make_estimator(key) == estimator


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown estimator 'nope'"),
        ("ips:cap=3", "parameter 'cap=3' is invalid"),
        ("ips:clip=abc", "must be a number"),
        ("ips:clip=-1", "clip must be a positive finite number"),
        ("switch-dr:tau=-2", "tau must be >= 0"),
        ("sg-ips:lam=2", r"lam must be in \[0, 1\]"),
    ],
)
def test_make_estimator_rejects_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        make_estimator(spec)
