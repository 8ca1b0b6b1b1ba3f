"""Simulated log, offline evaluation, and online simulation agree within the interval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from offline_eval.estimators import make_estimator
from offline_eval.evaluate import EvaluationSettings, evaluate
from offline_eval.readers import read_event_log
from offline_eval.targets import BaselineTarget
from serving.cli import main
from simulations.micro import MicroAdjustmentScenario
from simulations.offline_agreement import AgreementSettings, rounds_of_log, run_agreement
from simulations.policies import resolve_policies

# 20,000 uniformly random rounds give each deterministic target about 1,700
# matching rows; the online side is 5 other seeds of 20,000 rounds.
SETTINGS = AgreementSettings(rounds=20_000, log_seed=0, online_seeds=(1, 2, 3, 4, 5))
TARGETS = ("baseline", "oracle")
ESTIMATORS = ("ips", "snips", "dr")


@pytest.fixture(scope="module")
def agreement() -> pd.DataFrame:
    scenario = MicroAdjustmentScenario()
    return run_agreement(scenario, resolve_policies(["uniform"])[0], resolve_policies(TARGETS), SETTINGS)


def test_agreement_has_every_pair(agreement):
    pairs = set(zip(agreement["target"], agreement["estimator"]))
    assert pairs == {(t, e) for t in TARGETS for e in ESTIMATORS}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_online_mean_inside_offline_interval(agreement, target, estimator):
    row = agreement[(agreement["target"] == target) & (agreement["estimator"] == estimator)].iloc[0]
    assert row["offline_low"] <= row["online_mean"] <= row["offline_high"], row.to_dict()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_truth_inside_offline_interval(agreement, target, estimator):
    row = agreement[(agreement["target"] == target) & (agreement["estimator"] == estimator)].iloc[0]
    assert row["offline_low"] <= row["truth_on_log"] <= row["offline_high"], row.to_dict()


def test_offline_separates_oracle_from_baseline(agreement):
    ips = agreement[agreement["estimator"] == "ips"].set_index("target")
    assert ips.loc["oracle", "offline_low"] > ips.loc["baseline", "offline_high"]
    assert ips.loc["oracle", "online_low"] > ips.loc["baseline", "online_high"]


def test_command_line_matches_python(tmp_path, capsys):
    simulated = tmp_path / "sim"
    assert main(["simulate", "micro", "--policies", "uniform", "--rounds", "3000", "--seeds", "1",
                 "--log-events", "--no-plots", "--no-progress", "--out", str(simulated)]) == 0
    log = simulated / "logs" / "uniform" / "seed-0" / "events"
    rules = simulated / "baseline_rules.yaml"
    evaluated = tmp_path / "eval"
    assert main(["evaluate", str(log), "--target", f"baseline:{rules}", "--estimators", "ips",
                 "--bootstrap-samples", "50", "--no-progress", "--out", str(evaluated)]) == 0
    capsys.readouterr()
    document = json.loads((evaluated / "results.json").read_text())
    from_command = [r["estimate"] for r in document["estimates"] if r["policy"] == "baseline"][0]

    data = read_event_log(log)
    target = BaselineTarget(rules=MicroAdjustmentScenario().baseline_rules(), name="baseline")
    result = evaluate(data, [target], EvaluationSettings(estimators=(make_estimator("ips"),), n_resamples=50))
    assert from_command == pytest.approx(float(result.estimates["estimate"].iloc[0]), abs=1e-12)
    assert data.n_rows == 3000


def test_rounds_of_log_reads_event_ids(tmp_path):
    assert main(["simulate", "micro", "--policies", "uniform", "--rounds", "50", "--seeds", "1", "--first-seed",
                 "4", "--log-events", "--no-plots", "--no-progress", "--out", str(tmp_path)]) == 0
    data = read_event_log(tmp_path / "logs" / "uniform" / "seed-4" / "events")
    np.testing.assert_array_equal(np.sort(rounds_of_log(data, 4)), np.arange(50))
    with pytest.raises(ValueError, match="is not of seed 3"):
        rounds_of_log(data, 3)


def test_settings_reject_log_seed_among_online_seeds():
    with pytest.raises(ValueError, match="must not contain log_seed 1"):
        AgreementSettings(log_seed=1, online_seeds=(1, 2))
