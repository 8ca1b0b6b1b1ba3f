"""Reward join edge cases, with explicit timestamps instead of a clock."""

import pytest

from bandit import (
    Action,
    Aggregation,
    BackpressureError,
    DecisionRecord,
    JoinOutcome,
    JoinSettings,
    LearningMode,
    RewardJoiner,
    RewardRecord,
    RewardStatus,
)
from bandit.join import ActivationStatus

WAIT = 10.0


def _decision(event_id="e1", timestamp=100.0, deferred=False):
    return DecisionRecord(
        event_id=event_id, policy="p", timestamp=timestamp, context={}, actions=(Action("a", {}), Action("b", {})),
        excluded_ids=(), action_ids=("a", "b"), pmf=(0.5, 0.5), chosen_action="a", probability=0.5,
        model_version=0, learning_mode=LearningMode.ONLINE, deferred=deferred,
    )


def _reward(value, timestamp, event_id="e1", reward_id=None):
    return RewardRecord(event_id, "p", timestamp, value, reward_id)


def _joiner(aggregation=Aggregation.SUM, **kwargs):
    return RewardJoiner(JoinSettings(reward_wait_time=WAIT, default_reward=-0.5, aggregation=aggregation, **kwargs))


def test_no_reward_gives_default_once():
    joiner = _joiner()
    joiner.add_decision(_decision())
    assert joiner.advance(109.9) == ([], [])
    joined, _ = joiner.advance(110.0)
    assert len(joined) == 1
    assert joined[0].outcome is JoinOutcome.DEFAULT
    assert joined[0].reward == -0.5
    assert joiner.advance(1000.0) == ([], [])


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [(Aggregation.SUM, 1.25), (Aggregation.MEAN, 0.625), (Aggregation.MAX, 1.0), (Aggregation.MIN, 0.25)],
)
def test_two_rewards_aggregate(aggregation, expected):
    joiner = _joiner(aggregation)
    joiner.add_decision(_decision())
    assert joiner.add_reward(_reward(1.0, 101.0))[0] is RewardStatus.ACCEPTED
    assert joiner.add_reward(_reward(0.25, 102.0))[0] is RewardStatus.ACCEPTED
    joined, _ = joiner.advance(110.0)
    assert joined[0].reward == pytest.approx(expected)
    assert joined[0].reward_count == 2
    assert joined[0].outcome is JoinOutcome.OBSERVED


def test_earliest_joins_at_first_reward_and_later_one_is_late():
    joiner = _joiner(Aggregation.EARLIEST)
    joiner.add_decision(_decision())
    status, joined = joiner.add_reward(_reward(0.75, 101.0))
    assert status is RewardStatus.ACCEPTED
    assert [j.reward for j in joined] == [0.75]
    assert joiner.add_reward(_reward(1.0, 102.0))[0] is RewardStatus.LATE
    assert joiner.advance(200.0) == ([], [])


def test_duplicate_reward_id_counted_once():
    joiner = _joiner()
    joiner.add_decision(_decision())
    joiner.add_reward(_reward(1.0, 101.0, reward_id="r1"))
    assert joiner.add_reward(_reward(1.0, 101.5, reward_id="r1"))[0] is RewardStatus.DUPLICATE
    joined, _ = joiner.advance(110.0)
    assert joined[0].reward == 1.0
    assert joiner.add_reward(_reward(1.0, 111.0, reward_id="r1"))[0] is RewardStatus.DUPLICATE
    assert joiner.stats.duplicates == 2


def test_late_reward_after_window_not_learned():
    joiner = _joiner()
    joiner.add_decision(_decision())
    # Arrives after the deadline but before advance() ran: still late.
    assert joiner.add_reward(_reward(1.0, 111.0))[0] is RewardStatus.LATE
    joined, _ = joiner.advance(111.0)
    assert joined[0].outcome is JoinOutcome.DEFAULT
    assert joiner.add_reward(_reward(1.0, 112.0))[0] is RewardStatus.LATE
    assert joiner.stats.late == 2


def test_reward_before_decision_is_held_and_joined():
    joiner = _joiner(Aggregation.EARLIEST)
    assert joiner.add_reward(_reward(1.0, 100.5))[0] is RewardStatus.PENDING_DECISION
    joined = joiner.add_decision(_decision(timestamp=100.0))
    assert [j.reward for j in joined] == [1.0]


def test_held_reward_without_decision_becomes_orphan():
    joiner = _joiner(orphan_hold_time=5.0)
    joiner.add_reward(_reward(1.0, 100.0, event_id="ghost"))
    assert joiner.advance(104.0) == ([], [])
    _, orphans = joiner.advance(105.0)
    assert [o.status for o in orphans] == [RewardStatus.ORPHAN]
    assert joiner.stats.orphans == 1
    assert joiner.held_count == 0


def test_deferred_without_activation_not_learned():
    joiner = _joiner()
    joiner.add_decision(_decision(deferred=True))
    joiner.add_reward(_reward(1.0, 101.0))
    joined, _ = joiner.advance(110.0)
    assert joined[0].outcome is JoinOutcome.NOT_ACTIVATED
    assert not joined[0].learnable


def test_deferred_with_activation_learned():
    joiner = _joiner(Aggregation.EARLIEST)
    joiner.add_decision(_decision(deferred=True))
    assert joiner.add_reward(_reward(1.0, 101.0)) == (RewardStatus.ACCEPTED, [])
    status, joined = joiner.activate("e1", 102.0)
    assert status == ActivationStatus.ACTIVATED
    assert joined[0].outcome is JoinOutcome.OBSERVED


def test_activation_before_decision_is_held():
    joiner = _joiner()
    assert joiner.activate("e1", 100.0)[0] == ActivationStatus.PENDING_DECISION
    joiner.add_decision(_decision(deferred=True))
    joined, _ = joiner.advance(110.0)
    assert joined[0].outcome is JoinOutcome.DEFAULT


def test_activation_after_window_is_late():
    joiner = _joiner()
    joiner.add_decision(_decision(deferred=True))
    assert joiner.activate("e1", 111.0)[0] == ActivationStatus.LATE


def test_pending_limit_applies_backpressure():
    joiner = _joiner(max_pending=2)
    joiner.add_decision(_decision("e1"))
    joiner.add_decision(_decision("e2"))
    with pytest.raises(BackpressureError, match="max_pending"):
        joiner.add_decision(_decision("e3"))
    assert joiner.pending_count == 2
    joiner.advance(110.0)
    joiner.add_decision(_decision("e3", timestamp=110.0))
    assert joiner.pending_count == 1


def test_held_rewards_are_bounded():
    joiner = _joiner(max_pending=1)
    joiner.add_reward(_reward(1.0, 100.0, event_id="x1"))
    with pytest.raises(BackpressureError, match="held"):
        joiner.add_reward(_reward(1.0, 100.0, event_id="x2"))


def test_duplicate_decision_rejected():
    joiner = _joiner()
    joiner.add_decision(_decision())
    with pytest.raises(ValueError, match="already recorded"):
        joiner.add_decision(_decision())


def test_each_decision_joined_exactly_once_under_many_events():
    joiner = _joiner(Aggregation.MEAN)
    emitted = []
    for i in range(500):
        emitted += joiner.add_decision(_decision(f"e{i}", timestamp=float(i)))
        if i % 3 == 0:
            emitted += joiner.add_reward(_reward(1.0, float(i) + 1, event_id=f"e{i}"))[1]
        emitted += joiner.advance(float(i))[0]
    emitted += joiner.advance(10_000.0)[0]
    ids = [j.decision.event_id for j in emitted]
    assert sorted(ids) == sorted(f"e{i}" for i in range(500))
    assert sum(j.outcome is JoinOutcome.OBSERVED for j in emitted) == 167
