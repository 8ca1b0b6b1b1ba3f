"""Scenarios: seeded streams, the click model, drift, reward timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bandit.baseline import choose_baseline
from simulations.drift import DriftScenario
from simulations.micro import DRIFTED_CLICK_MODEL, ClickModel, MicroAdjustmentScenario, recency_bucket
from simulations.scenario import RewardTiming

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "serving" / "examples" / "micro_adjustments.yaml"


def test_stream_same_seed_identical():
    scenario = MicroAdjustmentScenario()
    first = scenario.stream(3, 500)
    second = MicroAdjustmentScenario().stream(3, 500)
    assert first.contexts == second.contexts
    np.testing.assert_array_equal(first.expected, second.expected)
    np.testing.assert_array_equal(first.draws, second.draws)
    np.testing.assert_array_equal(first.delays, second.delays)


def test_stream_other_seed_differs():
    scenario = MicroAdjustmentScenario()
    assert scenario.stream(1, 200).contexts != scenario.stream(2, 200).contexts


def test_micro_click_rates_realistic():
    stream = MicroAdjustmentScenario().stream(0, 20_000)
    uniform = stream.expected.mean()
    oracle = stream.oracle_rewards.mean()
    assert 0.025 < uniform < 0.045
    assert 0.055 < oracle < 0.09
    assert stream.expected.min() > 0.005
    assert np.percentile(stream.oracle_rewards, 90) < 0.15


def test_micro_interactions_visible():
    scenario = MicroAdjustmentScenario()
    ids = [a.id for a in scenario.actions()]
    phone_wifi = {
        "device": {"type": "mobile", "network": "wifi"},
        "time": {"hour": 10.0},
        "activity": {"last_category": "shoes", "minutes_since_view": 60.0, "recency": "30m_to_2h",
                     "visits_same_category": 1.0},
    }
    rates = dict(zip(ids, scenario.expected_rewards(phone_wifi, 0)))
    assert rates["cta_buy_now|img_large|layout_simplified"] > rates["cta_buy_now|img_standard|layout_full"]
    recent = {**phone_wifi, "activity": {**phone_wifi["activity"], "minutes_since_view": 2.0, "recency": "under_5m"}}
    recent_rates = dict(zip(ids, scenario.expected_rewards(recent, 0)))
    assert recent_rates["cta_see_details|img_large|layout_simplified"] > rates["cta_see_details|img_large|layout_simplified"]
    loyal = {**phone_wifi, "activity": {**phone_wifi["activity"], "visits_same_category": 4.0}}
    loyal_rates = dict(zip(ids, scenario.expected_rewards(loyal, 0)))
    best = max(loyal_rates, key=loyal_rates.get)
    assert best.startswith("cta_add_to_cart")


def test_micro_matches_example_config():
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    policy = config["policies"][0]
    scenario = MicroAdjustmentScenario()
    assert [a.id for a in scenario.actions()] == policy["baseline"]["actions"]
    rules = scenario.baseline_rules()
    configured = [
        ([(c["feature"], c["op"], c["value"]) for c in rule["when"]], rule["action"])
        for rule in policy["baseline"]["rules"]
    ]
    ours = [([(c.feature, c.op, c.value) for c in rule.conditions], rule.action) for rule in rules.rules]
    assert ours == configured
    assert rules.default == policy["baseline"]["default"]


def test_baseline_rules_follow_device():
    scenario = MicroAdjustmentScenario()
    stream = scenario.stream(5, 300)
    ids = [a.id for a in stream.actions]
    for context in stream.contexts:
        chosen = choose_baseline(scenario.baseline_rules(), context, ids)
        if context["device"]["type"] == "mobile" and context["device"]["network"] == "wifi":
            assert chosen == "cta_buy_now|img_large|layout_simplified"


def test_recency_bucket_edges():
    assert recency_bucket(4.99) == "under_5m"
    assert recency_bucket(5.0) == "5m_to_30m"
    assert recency_bucket(119.0) == "30m_to_2h"
    assert recency_bucket(1440.0) == "never"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mobile_share": 1.2}, "mobile_share"),
        ({"mobile_share": 0.8, "tablet_share": 0.3}, "mobile_share \\+ tablet_share"),
        ({"median_minutes": 0.0}, "median_minutes"),
        ({"mean_visits": 0.5}, "mean_visits"),
    ],
)
def test_micro_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MicroAdjustmentScenario(**kwargs)


def test_click_model_rejects_bad_values():
    with pytest.raises(ValueError, match="base_rate"):
        ClickModel(base_rate=1.5)
    with pytest.raises(ValueError, match="large_image must have the keys"):
        ClickModel(large_image={"mobile": 1.0})
    with pytest.raises(TypeError, match="click_model must be a ClickModel"):
        MicroAdjustmentScenario(click_model={"base_rate": 0.1})


def test_drift_abrupt_switches_preferences():
    before = MicroAdjustmentScenario()
    after = MicroAdjustmentScenario(DRIFTED_CLICK_MODEL)
    drift = DriftScenario(before, after, change_round=100, kind="abrupt")
    stream = drift.stream(0, 200)
    for t in (0, 99, 100, 199):
        expected = (before if t < 100 else after).expected_rewards(stream.contexts[t], t)
        np.testing.assert_allclose(stream.expected[t], expected)


def test_drift_gradual_blends_linearly():
    before = MicroAdjustmentScenario()
    after = MicroAdjustmentScenario(DRIFTED_CLICK_MODEL)
    drift = DriftScenario(before, after, change_round=10, kind="gradual", width=4)
    assert [drift.weight(t) for t in (9, 10, 11, 12, 13, 14)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    context = before.stream(0, 1).contexts[0]
    mixed = drift.expected_rewards(context, 11)
    np.testing.assert_allclose(mixed, 0.5 * before.expected_rewards(context, 0) + 0.5 * after.expected_rewards(context, 0))


def test_drift_changes_best_actions():
    stream = MicroAdjustmentScenario().stream(0, 2000)
    drifted = MicroAdjustmentScenario(DRIFTED_CLICK_MODEL)
    after = np.array([drifted.expected_rewards(c, 0) for c in stream.contexts])
    assert np.mean(after.argmax(axis=1) != stream.oracle_indices) > 0.8


def test_drift_rejects_bad_arguments():
    micro = MicroAdjustmentScenario()
    with pytest.raises(ValueError, match="kind must be one of"):
        DriftScenario(micro, micro, change_round=1, kind="sudden")
    with pytest.raises(ValueError, match="change_round"):
        DriftScenario(micro, micro, change_round=-1)
    with pytest.raises(TypeError, match="after must be a Scenario"):
        DriftScenario(micro, "later", change_round=1)


def test_reward_timing_rates():
    timing = RewardTiming(mean_delay_s=100.0, min_delay_s=5.0, missing_rate=0.2)
    delays, lost = timing.sample(np.random.default_rng(0), 50_000)
    assert delays.min() >= 5.0
    assert abs(delays.mean() - 105.0) < 2.0
    assert abs(lost.mean() - 0.2) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"missing_rate": 1.0}, "missing_rate"), ({"mean_delay_s": -1.0}, "mean_delay_s"), ({"min_delay_s": float("nan")}, "min_delay_s")],
)
def test_reward_timing_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RewardTiming(**kwargs)


def test_stream_rejects_bad_rounds():
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        MicroAdjustmentScenario().stream(0, 0)
