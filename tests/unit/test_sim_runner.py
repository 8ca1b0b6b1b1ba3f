"""In-process runner: determinism, reward timing, event logs, results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandit.eventlog import read_events
from simulations.catalog import DELAYED_TIMING
from simulations.micro import MicroAdjustmentScenario
from simulations.policies import PolicySpec, build_agent, resolve_policies, SimulatedClock
from simulations.results import ROUND_COLUMNS, SimulationResult
from simulations.runner import RunSettings, run_policy, run_simulation

POLICIES = ("uniform", "baseline", "oracle", "squarecb", "squarecb-slots")


@pytest.fixture(scope="module")
def small_run() -> SimulationResult:
    return run_simulation(
        MicroAdjustmentScenario(), resolve_policies(POLICIES), RunSettings(rounds=600, seeds=(0, 1), interval_s=10.0)
    )


def test_same_seed_identical_results(small_run):
    again = run_simulation(
        MicroAdjustmentScenario(), resolve_policies(POLICIES), RunSettings(rounds=600, seeds=(0, 1), interval_s=10.0)
    )
    pd.testing.assert_frame_equal(small_run.rounds, again.rounds)


def test_parallel_workers_same_results(small_run):
    parallel = run_simulation(
        MicroAdjustmentScenario(),
        resolve_policies(POLICIES),
        RunSettings(rounds=600, seeds=(0, 1), interval_s=10.0),
        workers=2,
    )
    pd.testing.assert_frame_equal(small_run.rounds, parallel.rounds)


def test_other_seed_other_results(small_run):
    other = run_simulation(
        MicroAdjustmentScenario(), resolve_policies(["squarecb"]), RunSettings(rounds=600, seeds=(2,), interval_s=10.0)
    )
    ours = small_run.rounds[(small_run.rounds["policy"] == "squarecb") & (small_run.rounds["seed"] == 0)]
    assert list(other.rounds["action"]) != list(ours["action"])


def test_round_table_columns_and_invariants(small_run):
    table = small_run.rounds
    assert list(table.columns) == list(ROUND_COLUMNS)
    assert len(table) == len(POLICIES) * 2 * 600
    assert (table["regret"] >= -1e-12).all()
    oracle = table[table["policy"] == "oracle"]
    assert np.allclose(oracle["regret"], 0.0)
    assert set(table[table["policy"] == "uniform"]["probability"].round(12)) == {round(1 / 12, 12)}
    slots = table[table["policy"] == "squarecb-slots"]
    assert ((slots["probability"] > 0) & (slots["probability"] <= 1)).all()


def test_common_random_numbers_shared(small_run):
    table = small_run.rounds
    first = table[(table["policy"] == "uniform") & (table["seed"] == 0)]
    second = table[(table["policy"] == "baseline") & (table["seed"] == 0)]
    np.testing.assert_array_equal(first["oracle_reward"].to_numpy(), second["oracle_reward"].to_numpy())
    assert list(first["segment"]) == list(second["segment"])


def test_summary_lift_against_baseline(small_run):
    summary = small_run.summary("baseline").set_index("policy")
    assert summary.loc["baseline", "lift"] == pytest.approx(0.0)
    per_seed = small_run.per_seed().set_index(["policy", "seed"])
    ratios = [
        per_seed.loc[("oracle", s), "mean_reward"] / per_seed.loc[("baseline", s), "mean_reward"] - 1 for s in (0, 1)
    ]
    assert summary.loc["oracle", "lift"] == pytest.approx(np.mean(ratios))
    assert summary.loc["oracle", "cumulative_regret"] == pytest.approx(0.0)


def test_result_save_and_load(tmp_path, small_run):
    paths = small_run.save(tmp_path)
    assert all(path.exists() for path in paths.values())
    loaded = SimulationResult.load(tmp_path)
    pd.testing.assert_frame_equal(
        loaded.rounds.astype({c: str for c in ("scenario", "policy", "segment", "action")}),
        small_run.rounds.astype({c: str for c in ("scenario", "policy", "segment", "action")}),
    )
    assert loaded.metadata["settings"]["seeds"] == [0, 1]


def test_curves_and_windows(small_run):
    curves = small_run.curves("reward", points=50)
    last = curves[curves["round"] == 600].set_index("policy")
    per_seed = small_run.per_seed().groupby("policy")["cumulative_reward"].mean()
    for policy in POLICIES:
        assert last.loc[policy, "mean"] == pytest.approx(per_seed[policy])
    windows = small_run.windowed("expected_reward", 100)
    assert len(windows) == len(POLICIES) * 6
    lift = small_run.segment_lift("baseline")
    assert set(lift["segment"]) == {"mobile-wifi", "mobile-cellular", "desktop", "tablet"}


def test_delayed_rewards_reach_join_late_or_never(tmp_path):
    scenario = MicroAdjustmentScenario(timing=DELAYED_TIMING)
    stream = scenario.stream(4, 3000)
    settings = RunSettings(rounds=3000, seeds=(4,), interval_s=10.0, reward_wait_time=120.0)
    spec = resolve_policies(["epsilon-greedy"])[0]
    arrays = run_policy(scenario, spec, stream, settings, log_dir=tmp_path)
    clicks = arrays["reward"] > 0
    assert arrays["reported"].sum() == (clicks & ~stream.lost).sum()
    rewards = read_events(tmp_path / "events", kinds=["reward"]).to_pandas()
    statuses = rewards["status"].value_counts()
    expected_late = int((clicks & ~stream.lost & (stream.delays > 120.0)).sum())
    assert statuses.get("late", 0) == expected_late
    assert statuses.get("accepted", 0) == int(arrays["reported"].sum()) - expected_late
    joined = read_events(tmp_path / "events", kinds=["joined"]).to_pandas()
    assert len(joined) == 3000
    assert (joined["status"] == "observed").sum() == statuses.get("accepted", 0)


def test_reference_policy_writes_event_log(tmp_path):
    run_simulation(
        MicroAdjustmentScenario(),
        resolve_policies(["baseline"]),
        RunSettings(rounds=200, seeds=(0,), interval_s=10.0),
        log_root=tmp_path,
    )
    decisions = read_events(tmp_path / "baseline" / "seed-0" / "events", kinds=["decision"]).to_pandas()
    assert len(decisions) == 200
    assert (decisions["probability"] == 1.0).all()
    assert (decisions["chosen_action"] == decisions["baseline_action"]).all()


def test_clock_drives_decision_timestamps():
    scenario = MicroAdjustmentScenario()
    stream = scenario.stream(0, 3)
    clock = SimulatedClock(1000.0)
    agent = build_agent(
        resolve_policies(["squarecb"])[0], scenario, stream, seed=0, clock=clock,
        join=RunSettings(rounds=3, seeds=(0,)).join_settings(),
    )
    clock.now = 1234.5
    agent.choose(0, "e1")
    assert agent.loop.learner.joiner is not None
    record = agent.loop._recent["e1"].record
    assert record.timestamp == 1234.5
    agent.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rounds": 0, "seeds": (0,)}, "rounds must be at least 1"),
        ({"rounds": 5, "seeds": ()}, "at least one seed"),
        ({"rounds": 5, "seeds": (1, 1)}, "distinct"),
        ({"rounds": 5, "seeds": (0,), "interval_s": 0.0}, "interval_s"),
        ({"rounds": 5, "seeds": (0,), "aggregation": "first"}, "first"),
    ],
)
def test_run_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RunSettings(**kwargs)


def test_policy_names_validated():
    with pytest.raises(ValueError, match="unknown"):
        resolve_policies(["thompson"])
    with pytest.raises(ValueError, match="more than once"):
        resolve_policies(["uniform", "uniform"])
    with pytest.raises(ValueError, match="needs an exploration"):
        PolicySpec("mine", "vw")
