"""Parts of the gRPC runner that need no server: settings, the comparison, command-line checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.cli import main
from simulations.grpc_runner import IN_PROCESS_SUFFIX, ServerRunSettings, compare_runners
from simulations.micro import MicroAdjustmentScenario
from simulations.policies import resolve_policies
from simulations.results import SimulationResult
from simulations.runner import RunSettings, event_id_for, run_simulation


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"address": "localhost"}, "address must be HOST:PORT"),
        ({"address": "127.0.0.1:1", "sync_every": -1}, "sync_every must be an integer >= 0"),
        ({"address": "127.0.0.1:1", "timeout": 0}, "timeout must be a positive number"),
        ({"address": "127.0.0.1:1", "rate": float("nan")}, "rate must be a positive number"),
    ],
)
def test_server_settings_reject_bad_values(arguments, message):
    with pytest.raises(ValueError, match=message):
        ServerRunSettings(**arguments)


def test_event_prefix_in_event_ids():
    assert event_id_for(3, 17) == "s3-r17"
    assert event_id_for(3, 17, "demo") == "demo-s3-r17"


def test_run_settings_reject_bad_event_prefix():
    with pytest.raises(ValueError, match="event_prefix 'a b' is invalid"):
        RunSettings(rounds=1, seeds=(0,), event_prefix="a b")


def test_event_prefix_changes_decisions():
    policies = resolve_policies(["uniform"])
    plain = run_simulation(MicroAdjustmentScenario(), policies, RunSettings(rounds=200, seeds=(0,)))
    prefixed = run_simulation(
        MicroAdjustmentScenario(), policies, RunSettings(rounds=200, seeds=(0,), event_prefix="other")
    )
    assert list(plain.rounds["action"]) != list(prefixed.rounds["action"])


def _relabelled(result: SimulationResult, mapping: dict[str, str]) -> pd.DataFrame:
    table = result.rounds.copy()
    table["policy"] = table["policy"].astype(str).replace(mapping)
    return table


def test_compare_runners_on_identical_runs():
    # Two equally seeded in-process runs stand in for the gRPC run and its replica.
    settings = RunSettings(rounds=300, seeds=(0, 1), interval_s=10.0)
    first = run_simulation(MicroAdjustmentScenario(), resolve_policies(["squarecb"]), settings)
    table = pd.concat(
        [_relabelled(first, {"squarecb": "served"}), _relabelled(first, {"squarecb": f"served{IN_PROCESS_SUFFIX}"})],
        ignore_index=True,
    )
    comparison = compare_runners(SimulationResult(table, {}), "served")
    per_seed = comparison["per_seed"]
    assert list(per_seed["seed"]) == [0, 1]
    np.testing.assert_array_equal(per_seed["grpc_mean_reward"], per_seed["in_process_mean_reward"])
    assert per_seed["same_action_before_first_update"].iloc[0] == 1.0
    assert np.isnan(per_seed["same_action_before_first_update"].iloc[1])
    assert comparison["mean_reward_difference"].mean == 0.0


def test_compare_runners_needs_both_labels():
    result = run_simulation(MicroAdjustmentScenario(), resolve_policies(["uniform"]), RunSettings(rounds=10, seeds=(0,)))
    with pytest.raises(ValueError, match="comparison needs 'uniform' and 'uniform.in-process'"):
        compare_runners(result, "uniform")


def test_server_options_need_server(tmp_path, capsys):
    status = main(["simulate", "micro", "--policies", "uniform", "--rounds", "10", "--seeds", "1",
                   "--compare-in-process", "--no-progress", "--out", str(tmp_path)])
    assert status == 2
    assert "apply only with --server" in capsys.readouterr().err


def test_server_rejects_workers(tmp_path, capsys):
    status = main(["simulate", "micro", "--server", "127.0.0.1:1", "--workers", "2", "--no-progress",
                   "--out", str(tmp_path)])
    assert status == 2
    assert "--workers does not apply with --server" in capsys.readouterr().err


def test_server_token_env_must_be_set(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MICROBANDIT_TEST_TOKEN", raising=False)
    status = main(["simulate", "micro", "--server", "127.0.0.1:1", "--token-env", "MICROBANDIT_TEST_TOKEN",
                   "--no-progress", "--out", str(tmp_path)])
    assert status == 2
    assert "MICROBANDIT_TEST_TOKEN, which is not set or empty" in capsys.readouterr().err


def test_server_settings_hide_token():
    assert "secret" not in repr(ServerRunSettings("127.0.0.1:1", token="secret"))
