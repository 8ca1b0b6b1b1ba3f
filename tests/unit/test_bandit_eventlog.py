"""Parquet event log: round trip, atomic segments, readers."""

import pyarrow.parquet as pq
import pytest

from bandit import Action, DecisionRecord, EventLog, JoinedEvent, JoinOutcome, LearningMode, RewardRecord, RewardStatus
from bandit.eventlog import list_segments, read_events, read_records
from bandit.errors import EventLogError
from bandit.events import ActivationRecord, EVENT_SCHEMA


def _decision(event_id):
    return DecisionRecord(
        event_id=event_id, policy="p", timestamp=1_733_000_000.123456,
        context={"user": {"device": "mobile", "age": 31.0, "returning": True, "odd|name": "x:y z"}},
        actions=(Action("a", {"item": {"color": "red"}}), Action("b|c", {})), excluded_ids=("z",),
        action_ids=("a", "b|c"), pmf=(0.25, 0.75), chosen_action="b|c", probability=0.75, model_version=3,
        learning_mode=LearningMode.ONLINE, deferred=True, baseline_action="a", user_id="u-1",
    )


def test_records_round_trip(tmp_path):
    decision = _decision("e1")
    records = [
        decision,
        RewardRecord("e1", "p", 1_733_000_001.5, 1.0, "r1", RewardStatus.ACCEPTED),
        ActivationRecord("e1", "p", 1_733_000_001.0),
        JoinedEvent(decision, 1.0, JoinOutcome.OBSERVED, 1, 1_733_000_010.0),
    ]
    log = EventLog(tmp_path)
    log.extend(records)
    log.flush()
    assert read_records(tmp_path) == records


def test_pandas_reads_same_rows(tmp_path):
    log = EventLog(tmp_path)
    log.extend([_decision("e1"), _decision("e2")])
    log.flush()
    frame = pq.read_table(list_segments(tmp_path)[0]).to_pandas()
    assert list(frame["event_id"]) == ["e1", "e2"]
    assert list(frame["probability"]) == [0.75, 0.75]
    assert list(frame.iloc[0]["pmf"]) == [0.25, 0.75]


def test_segments_ordered_and_kinds_filtered(tmp_path):
    log = EventLog(tmp_path)
    for i in range(3):
        log.append(_decision(f"e{i}"))
        log.append(RewardRecord(f"e{i}", "p", 1.0, 0.5))
        log.flush()
    assert log.flush() is None
    assert len(list_segments(tmp_path)) == 3
    decisions = read_events(tmp_path, kinds=["decision"])
    assert decisions["event_id"].to_pylist() == ["e0", "e1", "e2"]
    assert read_events(tmp_path).schema == EVENT_SCHEMA


def test_incomplete_segment_invisible_and_cleaned(tmp_path):
    log = EventLog(tmp_path)
    log.append(_decision("e1"))
    log.flush()
    stale = tmp_path / ".events-000000000001-deadbeef.parquet.tmp"
    stale.write_bytes(b"PAR1 half written")
    assert [r.event_id for r in read_records(tmp_path)] == ["e1"]
    reopened = EventLog(tmp_path)
    assert not stale.exists()
    reopened.append(_decision("e2"))
    reopened.flush()
    assert [r.event_id for r in read_records(tmp_path)] == ["e1", "e2"]


def test_corrupt_segment_raises(tmp_path):
    (tmp_path / "events-000000000000-00000000.parquet").write_bytes(b"garbage")
    with pytest.raises(EventLogError, match="unreadable"):
        read_events(tmp_path)


def test_read_lists_again_when_segment_vanishes(tmp_path, monkeypatch):
    log = EventLog(tmp_path)
    log.append(_decision("e1"))
    log.flush()
    real_read = pq.read_table
    calls = []

    def vanish_once(path, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(path)
        return real_read(path, **kwargs)

    monkeypatch.setattr("bandit.eventlog.pq.read_table", vanish_once)
    assert [r.event_id for r in read_records(tmp_path)] == ["e1"]
    assert len(calls) == 2
