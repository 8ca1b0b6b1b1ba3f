"""The learner service without Ray: ingest, timers, publication, checkpoints and restart."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from bandit.eventlog import read_events
from bandit.events import RewardStatus
from bandit.policy import Policy
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving.config import MicrobanditConfig, parse_config
from serving.decider import DeciderCore
from serving.learner import UNKNOWN_EVENT, LearnerService, policy_data_dir

START = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _config(data_dir: Path) -> MicrobanditConfig:
    return parse_config(
        {
            "server": {"data_dir": str(data_dir), "checkpoint_interval_seconds": 30},
            "policies": [
                {
                    "name": "p1",
                    "seed": 5,
                    "model_update_interval_seconds": 2.0,
                    "join": {"reward_wait_time_seconds": 60, "aggregation": "earliest"},
                }
            ],
        }
    )


def _decisions(config: MicrobanditConfig, clock: FakeClock, count: int, prefix: str = "e") -> list:
    counter = itertools.count()
    core = DeciderCore(config, b"k", clock, new_event_id=lambda: f"{prefix}{next(counter)}")
    for _ in range(count):
        core.choose(
            pb.ChooseRequest(
                policy="p1",
                context={"u": pb.Namespace(features={"s": pb.FeatureValue(string_value="x")})},
                actions=[pb.Action(id="a"), pb.Action(id="b")],
            )
        )
    records = core.take_buffer("p1")
    core.close()
    return records


def test_rewards_learned_and_published_on_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    assert service.published.version == 0

    assert service.submit_decisions(_decisions(config, clock, 3)) == 3
    assert service.reward("e0", 1.0, None, clock.now) is RewardStatus.ACCEPTED
    assert service.learner.policy.examples_learned == 1

    clock.now += 1.0
    assert service.tick() is False
    assert service.latest_model(0) is None

    clock.now += 1.5
    assert service.tick() is True
    published = service.latest_model(0)
    assert published is not None
    assert published.version == 1
    assert Policy.from_checkpoint(published.checkpoint, service.settings).examples_learned == 1
    assert service.latest_model(1) is None


def test_duplicate_decisions_keep_first(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    records = _decisions(config, clock, 2)
    assert service.submit_decisions(records) == 2
    assert service.submit_decisions(records[:1]) == 0
    assert service.duplicate_decisions == 1
    assert service.info()["decisions"] == 2


def test_unknown_activation_changes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    assert service.activate("never-seen", clock.now) == UNKNOWN_EVENT
    service.checkpoint()
    assert read_events(policy_data_dir(tmp_path, "p1") / "events").num_rows == 0


def test_reward_for_unseen_decision_is_held_then_joined(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    records = _decisions(config, clock, 1)
    assert service.reward("e0", 1.0, "r1", clock.now) is RewardStatus.PENDING_DECISION
    service.submit_decisions(records)
    assert service.learner.policy.examples_learned == 1


def test_windows_close_with_default_reward_on_tick(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    service.submit_decisions(_decisions(config, clock, 4))
    clock.now += 61.0
    service.tick()
    assert service.learner.policy.examples_learned == 4
    assert service.info()["pending"] == 0


def test_checkpoint_timer_and_restart_continue_version(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    service.submit_decisions(_decisions(config, clock, 5))
    for i in range(5):
        service.reward(f"e{i}", 1.0, None, clock.now)
    clock.now += 31.0
    assert service.tick() is True
    assert (policy_data_dir(tmp_path, "p1") / "checkpoint.mbk").exists()
    version = service.published.version

    service.submit_decisions(_decisions(config, clock, 2, prefix="f"))
    service.reward("f0", 0.0, None, clock.now)
    service.close()
    final_version = service.published.version
    assert final_version == version + 1

    restarted = LearnerService(config.policies[0], config.server, clock)
    # A restart with a non-empty log always starts the next version.
    assert restarted.published.version == final_version + 1
    assert restarted.learner.policy.examples_learned == 6
    assert restarted.info()["pending"] == 1
    kinds = read_events(policy_data_dir(tmp_path, "p1") / "events")["kind"].to_pylist()
    assert kinds.count("decision") == 7
    assert kinds.count("reward") == 6


def test_info_reports_settings_and_counts(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    info = service.info()
    assert info["name"] == "p1"
    assert '"name":"p1"' in info["settings_json"]
    assert "--cb_explore_adf" in info["vw_args"]
    assert info["last_model_update"] == 0.0
    assert info["model_update_interval"] == 2.0


def test_apprentice_mode_reports_match_rate(tmp_path: Path) -> None:
    clock = FakeClock()
    config = parse_config(
        {
            "server": {"data_dir": str(tmp_path)},
            "policies": [{"name": "p1", "learning_mode": "apprentice", "join": {"aggregation": "earliest"}}],
        }
    )
    service = LearnerService(config.policies[0], config.server, clock)
    assert math.isnan(service.info()["apprentice_match_rate"])

    records = _decisions(config, clock, 4)
    assert all(r.chosen_action == "a" and r.probability == 1.0 for r in records)
    service.submit_decisions(records)
    for record in records:
        service.reward(record.event_id, 1.0, None, clock.now)
    rate = service.info()["apprentice_match_rate"]
    assert 0.0 <= rate <= 1.0
    assert service.info()["learning_mode"] == "apprentice"
    assert service.learner.policy.has_finite_weights()


def test_crash_never_reuses_published_version(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    service = LearnerService(config.policies[0], config.server, clock)
    service.submit_decisions(_decisions(config, clock, 3))
    for i in range(3):
        service.reward(f"e{i}", 1.0, None, clock.now)
        clock.now += 2.5
        service.tick()
    published = service.published.version
    assert published == 3

    # No close(): the process died, so nothing after the start was flushed or checkpointed.
    crashed = LearnerService(config.policies[0], config.server, clock)
    assert crashed.published.version == published + 1
    again = LearnerService(config.policies[0], config.server, clock)
    assert again.published.version == published + 2
