"""The Open Bandit Dataset sample reader and its Thompson-sampling evaluation policy."""

import math

import numpy as np
import pytest

from offline_eval.estimators import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedIPS
from offline_eval.evaluate import EvaluationSettings, evaluate
from offline_eval.obd import bts_action_position_distribution, bts_prior, obd_bts_target, read_obd
from offline_eval.readers import read_log

ITEMS = {"all": 80, "men": 34, "women": 46}


@pytest.mark.parametrize("behavior", ["random", "bts"])
@pytest.mark.parametrize("campaign", sorted(ITEMS))
def test_read_obd_sample(behavior, campaign):
    data = read_obd(behavior, campaign)
    assert data.n_rows == 10_000
    assert len(data.actions) == ITEMS[campaign]
    assert sorted(set(data.position.tolist())) == [0, 1, 2]
    assert np.all(np.diff(data.timestamp) >= 0)
    assert data.context_namespaces(0)["position"] == {"position": str(data.position[0])}
    if behavior == "random":
        np.testing.assert_allclose(data.propensity, 1.0 / ITEMS[campaign])
    else:
        assert data.propensity.min() < 1e-3 < data.propensity.max()


def test_obd_through_read_log():
    assert read_log("obd:random/men").n_rows == 10_000


def test_obd_rejects_unknown_campaign():
    with pytest.raises(ValueError, match="campaign must be one of"):
        read_obd("random", "kids")


@pytest.mark.parametrize("campaign", sorted(ITEMS))
def test_bts_distribution_is_per_position_pmf(campaign):
    alpha, beta = bts_prior(campaign)
    assert alpha.size == ITEMS[campaign]
    table = bts_action_position_distribution(alpha, beta, n_simulations=20_000, seed=1)
    assert table.shape == (ITEMS[campaign], 3)
    np.testing.assert_allclose(table.sum(axis=0), 1.0)
    again = bts_action_position_distribution(alpha, beta, n_simulations=20_000, seed=1)
    np.testing.assert_array_equal(table, again)
    other = bts_action_position_distribution(alpha, beta, n_simulations=20_000, seed=2)
    assert np.abs(table - other).max() < 0.02  # Monte Carlo error of 20,000 draws


def test_bts_prefers_items_with_high_posterior_mean():
    alpha, beta = bts_prior("all")
    table = bts_action_position_distribution(alpha, beta, n_simulations=20_000, seed=0)
    best = int(np.argmax(alpha / (alpha + beta)))
    assert table[best].sum() > 3 * 3 / alpha.size  # far above a uniform share


@pytest.mark.parametrize("campaign", ["all", "men"])
def test_bts_value_from_random_log_matches_on_policy(campaign):
    """Off-policy estimates from the random log agree with the click rate of the BTS log."""
    random_log = read_obd("random", campaign)
    on_policy = read_obd("bts", campaign).reward
    target = obd_bts_target(campaign, n_simulations=20_000, seed=0)
    settings = EvaluationSettings(
        estimators=(InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust()), interval="normal", time_bins=0
    )
    result = evaluate(random_log, [target], settings)
    on_policy_error = on_policy.std(ddof=1) / math.sqrt(on_policy.size)
    for row in result.estimates.to_dict(orient="records"):
        estimate_error = (row["upper"] - row["lower"]) / (2 * 1.96)
        combined = math.hypot(estimate_error, on_policy_error)
        assert abs(row["estimate"] - on_policy.mean()) < 3.5 * combined, row
