"""Validation of logged data at the boundary, and the log readers."""

import json

import numpy as np
import pandas as pd
import pytest

from bandit import Action, DecisionLoop, JoinSettings, PolicySettings
from offline_eval.data import LoggedData
from offline_eval.readers import read_event_log, read_log, read_table, table_to_logged_data

ACTIONS = [Action("a", {}), Action("b", {}), Action("c", {})]


def _arrays(n=4, **overrides):
    arrays = {
        "contexts": [{"user": {"device": "mobile" if i % 2 else "desktop"}} for i in range(n)],
        "actions": ACTIONS,
        "action_index": np.tile(np.arange(3, dtype=np.int32), (n, 1)),
        "logged_slot": np.arange(n) % 3,
        "propensity": np.full(n, 1 / 3),
        "reward": np.arange(n) % 2 * 1.0,
    }
    arrays.update(overrides)
    return arrays


def test_valid_arrays_build_container():
    data = LoggedData.from_arrays(**_arrays())
    assert data.n_rows == 4
    assert data.n_slots == 3
    assert list(data.contexts.columns) == ["user.device"]
    assert data.context_namespaces(1) == {"user": {"device": "mobile"}}
    assert data.logged_action.tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("propensity", 0.0, r"row 2, column 'probability': a propensity must be in \(0, 1\], got 0.0"),
        ("propensity", 1.5, r"row 2, column 'probability'.*got 1.5"),
        ("propensity", np.nan, r"row 2, column 'probability'.*got nan"),
        ("reward", np.nan, r"row 2, column 'reward': a reward must be a finite number"),
        ("reward", np.inf, r"row 2, column 'reward'"),
    ],
)
def test_invalid_value_names_row_and_column(column, value, message):
    arrays = _arrays()
    bad = arrays[column].copy()
    bad[2] = value
    arrays[column] = bad
    with pytest.raises(ValueError, match=message):
        LoggedData.from_arrays(**arrays)


def test_chosen_action_outside_action_set_rejected():
    index = np.tile(np.arange(3, dtype=np.int32), (4, 1))
    index[1, 2] = -1  # row 1 has two actions
    with pytest.raises(ValueError, match=r"row 1, column 'chosen_action'"):
        LoggedData.from_arrays(**_arrays(action_index=index, logged_slot=np.array([0, 2, 1, 0])))


def test_empty_log_rejected():
    with pytest.raises(ValueError, match="empty"):
        LoggedData.from_arrays(**_arrays(n=0, action_index=np.zeros((0, 3), np.int32)))


def test_duplicate_action_in_set_rejected():
    index = np.tile(np.arange(3, dtype=np.int32), (4, 1))
    index[3] = [0, 1, 1]
    with pytest.raises(ValueError, match=r"row 3, column 'actions': an action appears twice"):
        LoggedData.from_arrays(**_arrays(action_index=index))


def test_pmf_disagreeing_with_propensity_rejected():
    pmf = np.full((4, 3), 1 / 3)
    pmf[0] = [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"row 0, column 'probability'.*differs from the PMF"):
        LoggedData.from_arrays(**_arrays(logging_pmf=pmf))


def test_unsorted_timestamps_sorted_with_rows():
    data = LoggedData.from_arrays(**_arrays(timestamp=np.array([3.0, 1.0, 2.0, 0.0])))
    assert data.timestamp.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert data.logged_slot.tolist() == [0, 1, 2, 0]
    assert data.reward.tolist() == [1.0, 1.0, 0.0, 0.0]


def _table(n=5):
    return pd.DataFrame(
        {
            "context": [json.dumps({"user": {"device": "mobile", "visits": i}}) for i in range(n)],
            "actions": [json.dumps(["a", "b", "c"])] * n,
            "chosen_action": ["a", "b", "c", "a", "b"][:n],
            "probability": [0.5, 0.25, 0.25, 0.5, 0.25][:n],
            "reward": [1.0, 0.0, 0.0, 1.0, 0.5][:n],
            "position": [0, 1, 0, 1, 0][:n],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_round_trip(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    frame = _table()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    data = read_table(path)
    assert data.n_rows == 5
    assert data.action_ids == ("a", "b", "c")
    assert data.logged_slot.tolist() == [0, 1, 2, 0, 1]
    assert data.position.tolist() == [0, 1, 0, 1, 0]
    assert data.context_namespaces(2) == {"user": {"device": "mobile", "visits": 2.0}, "position": {"position": "0"}}


def test_table_missing_column_named():
    with pytest.raises(ValueError, match=r"missing required columns \['reward'\]"):
        table_to_logged_data(_table().drop(columns="reward"))


def test_table_chosen_action_not_in_actions():
    frame = _table()
    frame.loc[3, "chosen_action"] = "z"
    with pytest.raises(ValueError, match=r"row 3, column 'chosen_action': 'z' is not in the row's actions"):
        table_to_logged_data(frame)


def test_table_zero_probability_names_row():
    frame = _table()
    frame.loc[4, "probability"] = 0.0
    with pytest.raises(ValueError, match=r"row 4, column 'probability'"):
        table_to_logged_data(frame)


def test_table_empty_rejected():
    with pytest.raises(ValueError, match="empty"):
        table_to_logged_data(_table().iloc[:0])


def test_table_invalid_json_named():
    frame = _table()
    frame.loc[1, "context"] = "{not json"
    with pytest.raises(ValueError, match=r"row 1, column 'context': invalid JSON"):
        table_to_logged_data(frame)


def _write_event_log(directory, rounds=60):
    now = [1_700_000_000.0]
    settings = PolicySettings("offline", join=JoinSettings(reward_wait_time=5.0))
    loop = DecisionLoop(settings, directory, clock=lambda: now[0])
    actions = [Action("small", {"look": {"size": 1.0}}), Action("large", {"look": {"size": 2.0}})]
    deferred_ids = []
    for i in range(rounds):
        now[0] += 1.0
        deferred = i % 10 == 0
        decision = loop.choose({"user": {"device": "mobile" if i % 2 else "desktop"}}, actions, defer_activation=deferred)
        if deferred:
            deferred_ids.append(decision.event_id)
        elif i % 3 == 0:
            loop.reward(decision.event_id, 1.0)
        loop.advance()
    now[0] += 100.0
    loop.advance()
    loop.close()
    return len(deferred_ids)


def test_read_event_log_counts_not_activated(tmp_path):
    never_activated = _write_event_log(tmp_path / "log")
    data = read_event_log(tmp_path / "log")
    assert data.skipped == {"not_activated": never_activated}
    assert data.n_rows == 60 - never_activated
    assert data.logging_pmf is not None
    assert set(data.action_ids) == {"small", "large"}
    assert data.event_ids is not None
    assert np.all(np.diff(data.timestamp) >= 0)
    assert read_log(str(tmp_path / "log")).n_rows == data.n_rows


def test_read_event_log_without_joined_rows(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no joined events"):
        read_event_log(tmp_path / "empty")


def test_read_dsjson_matches_event_log(tmp_path):
    from bandit.maintenance import export_dsjson

    never_activated = _write_event_log(tmp_path / "log")
    export_dsjson(tmp_path / "log", tmp_path / "events.dsjson")
    from_log = read_event_log(tmp_path / "log")
    from_dsjson = read_log(str(tmp_path / "events.dsjson"))
    assert from_dsjson.n_rows == from_log.n_rows
    assert from_dsjson.skipped == {"not_activated": never_activated}
    np.testing.assert_allclose(from_dsjson.reward, from_log.reward)
    np.testing.assert_allclose(from_dsjson.propensity, from_log.propensity)
    assert from_dsjson.source.startswith("DSJSON log")


def test_read_server_directory_needs_policy(tmp_path):
    _write_event_log(tmp_path / "server" / "offline")
    _write_event_log(tmp_path / "server" / "other")
    with pytest.raises(ValueError, match=r"policies \['offline', 'other'\]: choose one with --policy"):
        read_event_log(tmp_path / "server")
    chosen = read_event_log(tmp_path / "server", policy="offline")
    assert chosen.n_rows == read_event_log(tmp_path / "server" / "offline").n_rows
