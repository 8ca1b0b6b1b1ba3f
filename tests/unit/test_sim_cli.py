"""The simulate command and the replay of the Open Bandit Dataset sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from offline_eval.obd import read_obd
from serving.cli import main
from simulations.policies import resolve_policies
from simulations.replay import replay_logged


def test_simulate_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(
        [
            "simulate", "micro", "--policies", "uniform,baseline,squarecb,oracle", "--rounds", "400",
            "--seeds", "2", "--out", str(out), "--log-events", "--no-progress",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "lift over baseline" in printed
    assert "squarecb" in printed
    for name in ("rounds.parquet", "summary.csv", "summary.json", "per_seed.csv", "cumulative_reward.png",
                 "cumulative_regret.png", "reward_over_time.png", "segment_lift.png"):
        assert (out / name).stat().st_size > 0, name
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert len(rounds) == 4 * 2 * 400
    summary = json.loads((out / "summary.json").read_text())
    assert [row["policy"] for row in summary["summary"]] == ["uniform", "baseline", "squarecb", "oracle"]
    assert (out / "logs" / "squarecb" / "seed-1" / "events").is_dir()


def test_simulate_rejects_unknown_policy(tmp_path, capsys):
    status = main(["simulate", "micro", "--policies", "uniform,thompson", "--out", str(tmp_path), "--no-progress"])
    assert status == 2
    assert "policy 'thompson' is unknown" in capsys.readouterr().err


def test_simulate_rejects_bad_rounds(tmp_path):
    with pytest.raises(SystemExit):
        main(["simulate", "micro", "--rounds", "0", "--out", str(tmp_path)])


def test_replay_counts_only_matching_events():
    data = read_obd("random", "men")
    result = replay_logged(data, resolve_policies(["uniform", "epsilon-greedy"]), seeds=(0,))
    events = result.events
    n_items = len(data.actions)
    for policy in ("uniform", "epsilon-greedy"):
        rows = events[events["policy"] == policy]
        matched = rows["matched"].to_numpy()
        # About one event in n_items matches; 5 binomial standard deviations.
        expected = len(rows) / n_items
        assert abs(matched.sum() - expected) < 5 * np.sqrt(expected)
        np.testing.assert_array_equal(rows["reward"].to_numpy()[matched], data.reward[matched])
        assert rows["reward"][~matched].isna().all()


def test_replay_rejects_oracle():
    data = read_obd("random", "men")
    with pytest.raises(ValueError, match="no oracle"):
        replay_logged(data, resolve_policies(["oracle"]), seeds=(0,))
