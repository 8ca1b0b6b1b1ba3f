"""Learning behaviour on the micro-adjustment scenario (statistical, seeded, never skipped)."""

from __future__ import annotations

import pytest

from simulations.catalog import ScenarioOptions, build_scenario
from simulations.micro import MicroAdjustmentScenario
from simulations.policies import resolve_policies
from simulations.runner import RunSettings, run_simulation
from simulations.stats import intervals_overlap

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def micro_20k():
    # 20,000 visitors per seed, one every 10 simulated seconds, five seeds:
    # about 40 s of VW work on two cores.
    return run_simulation(
        MicroAdjustmentScenario(),
        resolve_policies(["uniform", "baseline", "squarecb"]),
        RunSettings(rounds=20_000, seeds=SEEDS, interval_s=10.0),
        workers=2,
    )


def test_squarecb_beats_baseline_and_uniform(micro_20k):
    squarecb = micro_20k.interval("squarecb", "mean_reward")
    baseline = micro_20k.interval("baseline", "mean_reward")
    uniform = micro_20k.interval("uniform", "mean_reward")
    assert squarecb.mean > baseline.mean > uniform.mean
    assert not intervals_overlap(squarecb, baseline), (squarecb, baseline)
    assert not intervals_overlap(squarecb, uniform), (squarecb, uniform)


def test_squarecb_lift_interval_positive(micro_20k):
    lift = micro_20k.lift("squarecb", "baseline")
    assert lift.low > 0.0, lift


def test_adaptive_recovers_after_abrupt_drift():
    # Preferences switch at round 10,000 of 30,000; over the last 5,000
    # rounds the adaptive configuration must earn at least 80% of what the
    # new oracle earns (expected reward, mean of three seeds).
    rounds, change, window = 30_000, 10_000, 5_000
    scenario = build_scenario("drift-abrupt", ScenarioOptions(rounds=rounds, change_round=change))
    result = run_simulation(
        scenario,
        resolve_policies(["squarecb-adaptive"]),
        RunSettings(rounds=rounds, seeds=(0, 1, 2), interval_s=10.0),
        workers=2,
    )
    late = result.rounds[result.rounds["round"] >= rounds - window]
    ratio = late["expected_reward"].mean() / late["oracle_reward"].mean()
    assert ratio >= 0.8, ratio
