"""The gRPC runner against the real server: ``microbandit simulate --server`` on loopback.

The tests use the session's server and its ``synthetic`` policy (SquareCB,
``earliest`` aggregation, a 600 s reward window), which accepts the
micro-adjustment scenario's twelve actions. Earlier tests may have trained
that policy, so the checks here hold for any starting model: every event
is closed and learned once, and the server's event log holds exactly the
rewards and probabilities the runner recorded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from bandit.eventlog import read_events
from serving.cli import main
from serving.client import DecisionClient
from serving.learner import policy_data_dir

from .conftest import CONSENT_POLICY, SYNTHETIC_POLICY, ServerProcess

pytestmark = pytest.mark.integration

ROUNDS = 400
SEEDS = 2
RUN_ID = "simgrpc"
LOG_FLUSH_WAIT = 30.0


@pytest.fixture(scope="module")
def simulated(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("simulate-grpc")
    with DecisionClient(server.address, timeout=10.0) as client:
        client.wait_ready()
        before = client.get_policy(SYNTHETIC_POLICY)
        status = main(
            [
                "simulate", "micro", "--server", server.address, "--policies", f"{SYNTHETIC_POLICY},baseline",
                "--rounds", str(ROUNDS), "--seeds", str(SEEDS), "--compare-in-process", "--run-id", RUN_ID,
                "--no-plots", "--no-progress", "--out", str(out),
            ]
        )
        after = client.get_policy(SYNTHETIC_POLICY)
    return {"status": status, "out": out, "before": before, "after": after}


def test_simulate_over_grpc_exits_zero(simulated):
    assert simulated["status"] == 0


def test_simulate_over_grpc_writes_every_round(simulated):
    rounds = pd.read_parquet(Path(simulated["out"]) / "rounds.parquet")
    counts = rounds.groupby("policy", observed=True).size().to_dict()
    assert counts == {
        SYNTHETIC_POLICY: ROUNDS * SEEDS,
        f"{SYNTHETIC_POLICY}.in-process": ROUNDS * SEEDS,
        "baseline": ROUNDS * SEEDS,
    }
    served = rounds[rounds["policy"] == SYNTHETIC_POLICY]
    assert ((served["probability"] > 0) & (served["probability"] <= 1)).all()


def test_server_learned_every_event_once(simulated):
    learned = simulated["after"].examples_learned - simulated["before"].examples_learned
    assert learned == ROUNDS * SEEDS
    assert simulated["after"].model_version > simulated["before"].model_version


def test_reward_statuses_match_reports(simulated):
    out = Path(simulated["out"])
    rounds = pd.read_parquet(out / "rounds.parquet")
    served = rounds[rounds["policy"] == SYNTHETIC_POLICY]
    entry = next(p for p in json.loads((out / "summary.json").read_text())["metadata"]["policies"]
                 if p["name"] == SYNTHETIC_POLICY)
    statuses = entry["reward_statuses"]
    reported = int(served["reported"].sum())
    assert statuses.get("accepted", 0) + statuses.get("pending_decision", 0) == reported
    assert entry["default_rewards_sent"] == ROUNDS * SEEDS - reported
    assert statuses.get("default_accepted", 0) + statuses.get("default_pending_decision", 0) == ROUNDS * SEEDS - reported


def test_runner_comparison_written(simulated):
    comparison = pd.read_csv(Path(simulated["out"]) / "runner_comparison.csv")
    assert list(comparison["seed"]) == [0, 1]
    assert (comparison["grpc_rounds_per_model_version"] >= comparison["in_process_rounds_per_model_version"]).all()


def _joined_rows(data_dir: Path) -> pd.DataFrame:
    table = read_events(policy_data_dir(data_dir, SYNTHETIC_POLICY) / "events", kinds=["joined"])
    table = table.filter(pc.starts_with(table["event_id"], f"{RUN_ID}-"))
    return table.select(["event_id", "probability", "reward"]).to_pandas()


def test_server_log_matches_rounds(simulated, server: ServerProcess):
    # The learner writes a segment at least every 5 s.
    deadline = time.monotonic() + LOG_FLUSH_WAIT
    joined = _joined_rows(server.data_dir)
    while len(joined) < ROUNDS * SEEDS and time.monotonic() < deadline:
        time.sleep(1.0)
        joined = _joined_rows(server.data_dir)
    assert len(joined) == ROUNDS * SEEDS

    rounds = pd.read_parquet(Path(simulated["out"]) / "rounds.parquet")
    served = rounds[rounds["policy"] == SYNTHETIC_POLICY].copy()
    served["event_id"] = [f"{RUN_ID}-s{s}-r{r}" for s, r in zip(served["seed"], served["round"])]
    merged = served.merge(joined, on="event_id", suffixes=("", "_logged"), validate="one_to_one")
    assert len(merged) == ROUNDS * SEEDS
    np.testing.assert_array_equal(merged["reward_logged"].to_numpy(), merged["reward"].to_numpy())
    np.testing.assert_allclose(merged["probability_logged"].to_numpy(), merged["probability"].to_numpy(), rtol=1e-6)


def test_repeated_run_id_rejected(simulated, server: ServerProcess, tmp_path, capsys):
    status = main(
        [
            "simulate", "micro", "--server", server.address, "--policies", SYNTHETIC_POLICY, "--rounds", "1",
            "--seeds", "1", "--run-id", RUN_ID, "--no-plots", "--no-progress", "--out", str(tmp_path),
        ]
    )
    assert status == 1
    assert "already decided event 'simgrpc-s0-r0'" in capsys.readouterr().err


def test_unknown_served_policy_rejected(server: ServerProcess, tmp_path, capsys):
    status = main(
        [
            "simulate", "micro", "--server", server.address, "--policies", "no_such_policy", "--rounds", "1",
            "--seeds", "1", "--no-plots", "--no-progress", "--out", str(tmp_path),
        ]
    )
    assert status == 2
    assert "policy 'no_such_policy' is not served by the server" in capsys.readouterr().err


def test_consent_policy_learns_simulated_visitors(server: ServerProcess, tmp_path):
    with DecisionClient(server.address, timeout=10.0) as client:
        before = client.get_policy(CONSENT_POLICY).examples_learned
        status = main(
            [
                "simulate", "micro", "--server", server.address, "--policies", CONSENT_POLICY, "--rounds", "100",
                "--seeds", "1", "--run-id", f"{RUN_ID}-consent", "--no-plots", "--no-progress", "--out", str(tmp_path),
            ]
        )
        after = client.get_policy(CONSENT_POLICY).examples_learned
    assert status == 0
    assert after - before == 100
