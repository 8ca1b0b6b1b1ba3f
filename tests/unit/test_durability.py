"""Event-log batches for group commit, and the learner's log-sync interval."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from bandit.errors import EventLogError
from bandit.eventlog import EventLog, list_segments, read_records, write_batch, write_segment
from bandit.events import RewardRecord, RewardStatus
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving.config import parse_config
from serving.decider import DeciderCore
from serving.learner import LearnerService

START = 1_800_000_000.0


def _reward(index: int) -> RewardRecord:
    return RewardRecord(f"e{index}", "p", START + index, 1.0, f"r{index}")


def test_batch_detaches_buffer_and_counts_durable(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.extend([_reward(0), _reward(1)])
    batch = log.take_batch()
    assert batch is not None
    log.append(_reward(2))

    assert log.appended == 3
    assert log.durable == 0
    assert log.buffered == 1
    log.commit_batch(batch, write_batch(batch))
    assert log.durable == 2
    assert log.segments_written == 1
    log.flush()
    assert log.durable == 3
    assert [r.event_id for r in read_records(tmp_path)] == ["e0", "e1", "e2"]


def test_second_batch_waits_for_first(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append(_reward(0))
    batch = log.take_batch()
    assert batch is not None
    log.append(_reward(1))
    with pytest.raises(EventLogError, match="still being written"):
        log.take_batch()
    with pytest.raises(EventLogError, match="still being written"):
        log.flush()


def test_failed_batch_restored_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.extend([_reward(0), _reward(1)])
    batch = log.take_batch()
    assert batch is not None
    log.append(_reward(2))
    log.restore_batch(batch)

    assert log.buffered == 3
    assert log.durable == 0
    log.flush()
    assert [r.event_id for r in read_records(tmp_path)] == ["e0", "e1", "e2"]
    assert [p.name[:19] for p in list_segments(tmp_path)] == ["events-000000000000"]


def test_batch_written_from_other_thread(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.extend([_reward(i) for i in range(5)])
    batch = log.take_batch()
    assert batch is not None
    written = []
    writer = threading.Thread(target=lambda: written.append(write_batch(batch)))
    writer.start()
    log.extend([_reward(i) for i in range(5, 8)])
    writer.join()
    log.commit_batch(batch, written[0])
    log.flush()
    assert [r.event_id for r in read_records(tmp_path)] == [f"e{i}" for i in range(8)]


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_flush_due_after_log_sync_interval(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {"data_dir": str(tmp_path), "log_sync_interval_seconds": 0.5},
            "policies": [{"name": "p1", "join": {"reward_wait_time_seconds": 60}}],
        }
    )
    clock = FakeClock()
    service = LearnerService(config.policies[0], config.server, clock)
    assert service.flush_due() is False

    service.reward("unknown-1", 1.0, None, clock.now)
    clock.now += 0.4
    assert service.flush_due() is False
    clock.now += 0.1
    assert service.flush_due() is True
    service.tick()
    assert service.flush_due() is False
    assert service.learner.log is not None
    assert service.learner.log.durable == 1


def test_restart_recognizes_resent_joined_decision(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {"data_dir": str(tmp_path)},
            "policies": [{"name": "p1", "join": {"reward_wait_time_seconds": 60, "aggregation": "earliest"}}],
        }
    )
    clock = FakeClock()
    counter = itertools.count()
    core = DeciderCore(config, b"0123456789abcdef0123456789abcdef", clock, new_event_id=lambda: f"e{next(counter)}")
    request = pb.ChooseRequest(
        policy="p1",
        context={"u": pb.Namespace(features={"s": pb.FeatureValue(string_value="x")})},
        actions=[pb.Action(id="a"), pb.Action(id="b")],
    )
    core.choose(request)
    core.choose(request)
    records = core.take_buffer("p1")
    core.close()

    first = LearnerService(config.policies[0], config.server, clock)
    assert first.submit_decisions(records) == 2
    assert first.reward("e0", 1.0, "r0", clock.now) is RewardStatus.ACCEPTED
    first.learner.flush()  # what the actor does before acknowledging the reward

    restarted = LearnerService(config.policies[0], config.server, clock)
    assert restarted.submit_decisions(records) == 0
    assert restarted.duplicate_decisions == 2
    assert restarted.reward("e0", 1.0, "r0", clock.now) is RewardStatus.DUPLICATE
    assert restarted.learner.policy.examples_learned == 1


def test_merge_replaces_small_segments(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    for index in range(4):
        log.append(_reward(index))
        log.flush()
    assert log.unmerged == 4
    merged = log.merge()
    assert merged is not None
    log.append(_reward(4))
    log.flush()

    assert [p.name for p in list_segments(tmp_path)] == [merged.name, list_segments(tmp_path)[-1].name]
    assert merged.name.startswith("events-000000000003-")
    assert merged.name.endswith("-merged-000000000000.parquet")
    assert [r.event_id for r in read_records(tmp_path)] == [f"e{i}" for i in range(5)]
    assert log.merge() is None


def test_crash_during_merge_hides_replaced_segments(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    for index in range(3):
        log.append(_reward(index))
        log.flush()
    job = log.take_merge()
    assert job is not None
    # A crash after the merged segment is renamed into place but before the
    # replaced segments are deleted:
    write_segment(tmp_path, pa.concat_tables([s.table for s in job.segments]), 2, merged_from=0)
    assert len(list(tmp_path.glob("*.parquet"))) == 4

    assert [r.event_id for r in read_records(tmp_path)] == ["e0", "e1", "e2"]
    reopened = EventLog(tmp_path)
    assert len(list(tmp_path.glob("*.parquet"))) == 1
    reopened.append(_reward(3))
    reopened.flush()
    assert [r.event_id for r in read_records(tmp_path)] == ["e0", "e1", "e2", "e3"]


def test_merge_trailing_merges_small_segments_of_crashed_run(tmp_path: Path) -> None:
    crashed = EventLog(tmp_path)
    crashed.extend([_reward(i) for i in range(3)])
    crashed.flush()
    for index in range(3, 6):
        crashed.append(_reward(index))
        crashed.flush()

    reopened = EventLog(tmp_path)
    merged = reopened.merge_trailing()
    assert merged is not None
    assert merged.name.endswith("-merged-000000000000.parquet")
    assert len(list_segments(tmp_path)) == 1
    assert [r.event_id for r in read_records(tmp_path)] == [f"e{i}" for i in range(6)]
    assert EventLog(tmp_path).merge_trailing() is None


def test_merge_trailing_keeps_large_segments(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.extend([_reward(i) for i in range(3)])
    log.flush()
    for index in range(3, 5):
        log.append(_reward(index))
        log.flush()
    first = list_segments(tmp_path)[0]

    merged = EventLog(tmp_path).merge_trailing(max_segment_bytes=first.stat().st_size)
    assert merged is not None
    assert [p.name for p in list_segments(tmp_path)] == [first.name, merged.name]
    assert merged.name.endswith("-merged-000000000001.parquet")
    assert [r.event_id for r in read_records(tmp_path)] == [f"e{i}" for i in range(5)]


def test_conflicting_repeat_counted_and_newest_pending_kept(tmp_path: Path) -> None:
    config = parse_config(
        {
            "server": {"data_dir": str(tmp_path)},
            "policies": [{"name": "p1", "exploration": {"type": "epsilon_greedy", "epsilon": 1.0}}],
        }
    )
    clock = FakeClock()
    key = b"0123456789abcdef0123456789abcdef"
    records = []
    for seed_actions in (["a", "b"], ["b", "a"]):
        core = DeciderCore(config, key, clock)
        request = pb.ChooseRequest(
            policy="p1",
            event_id="client-1",
            context={"u": pb.Namespace(features={"s": pb.FeatureValue(string_value="x")})},
            actions=[pb.Action(id=a) for a in seed_actions],
            excluded_action_ids=[seed_actions[1]],
        )
        core.choose(request)
        records += core.take_buffer("p1")
        core.close()
    service = LearnerService(config.policies[0], config.server, clock)

    assert service.submit_decisions(records) == 1
    assert service.duplicate_decisions == 1
    assert service.conflicting_decisions == 1
    assert [r.event_id for r in service.learner.joiner.newest_pending(5)] == ["client-1"]
    assert service.learner.joiner.newest_pending(0) == []
