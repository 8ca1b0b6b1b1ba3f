"""The in-process loop: learning with delayed rewards, determinism, modes, restart."""

import numpy as np
import pytest

from bandit import (
    Action,
    Aggregation,
    BaselineRules,
    Condition,
    DecisionLoop,
    EpsilonGreedy,
    JoinSettings,
    LearningMode,
    PolicySettings,
    RewardStatus,
    Rule,
    SquareCB,
    read_records,
)
from bandit.events import DecisionRecord, JoinedEvent, RewardRecord

ACTIONS = [Action("A", {"look": {"style": "bold"}}), Action("B", {"look": {"style": "calm"}}), Action("C", {})]
BEST = {"mobile": "A", "desktop": "B"}


class FakeClock:
    """Simulated time in seconds."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _run(loop, clock, rounds, seed, wait, record_from=0):
    """Drive a two-segment problem; rewards arrive 1-5 s after each decision."""
    rng = np.random.default_rng(seed)
    queue = []
    hits = []
    for i in range(rounds):
        clock.now += 1.0
        device = "mobile" if rng.random() < 0.5 else "desktop"
        decision = loop.choose({"user": {"device": device}}, ACTIONS)
        click_rate = 0.8 if decision.chosen_action == BEST[device] else 0.2
        if rng.random() < click_rate:
            queue.append((clock.now + float(rng.uniform(1, 5)), decision.event_id))
        due = [item for item in queue if item[0] <= clock.now]
        queue = [item for item in queue if item[0] > clock.now]
        for _, event_id in due:
            loop.reward(event_id, 1.0)
        loop.advance()
        if i >= record_from:
            hits.append(decision.chosen_action == BEST[device])
    return hits


def test_squarecb_learns_context_dependent_best_action():
    clock = FakeClock()
    settings = PolicySettings(
        "learn", exploration=SquareCB(), seed=42,
        join=JoinSettings(reward_wait_time=8.0, aggregation=Aggregation.SUM),
    )
    loop = DecisionLoop(settings, clock=clock)
    hits = _run(loop, clock, 5000, seed=1, wait=8.0, record_from=4000)
    assert np.mean(hits) >= 0.90
    stats = loop.learner.stats()
    assert stats.examples_learned >= 4990
    assert stats.model_version > 100


def test_equally_seeded_loops_agree_exactly():
    outcomes = []
    for _ in range(2):
        clock = FakeClock()
        loop = DecisionLoop(PolicySettings("d", exploration=EpsilonGreedy(0.2), seed=9,
                                           join=JoinSettings(reward_wait_time=3.0)), clock=clock)
        _run(loop, clock, 300, seed=2, wait=3.0)
        clock.now += 10
        loop.advance()
        outcomes.append((loop.policy.pmf({"user": {"device": "mobile"}}, ACTIONS),
                         loop.choose({"user": {"device": "mobile"}}, ACTIONS).event_id))
    assert outcomes[0] == outcomes[1]


def test_repeated_event_id_returns_original_decision():
    loop = DecisionLoop(PolicySettings("r", exploration=EpsilonGreedy(0.9)), clock=FakeClock())
    first = loop.choose({"user": {"device": "mobile"}}, ACTIONS, event_id="client-1")
    for _ in range(5):
        assert loop.choose({"user": {"device": "desktop"}}, ACTIONS, event_id="client-1") == first
    assert loop.learner.stats().decisions == 1


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "a|b"])
def test_invalid_event_id_rejected(bad):
    loop = DecisionLoop(PolicySettings("r"), clock=FakeClock())
    if bad == "":
        return  # the empty id means "generate one" and is valid
    with pytest.raises(ValueError, match="event_id"):
        loop.choose({}, ACTIONS, event_id=bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.0, -0.1])
def test_invalid_reward_rejected_and_nothing_changes(value):
    loop = DecisionLoop(PolicySettings("r"), clock=FakeClock())
    decision = loop.choose({}, ACTIONS)
    with pytest.raises(ValueError, match="reward value"):
        loop.reward(decision.event_id, value)
    assert loop.learner.stats().rewards == 0


def _rules():
    return BaselineRules(
        rules=(Rule((Condition("user.device", "eq", "mobile"), Condition("user.network", "in", ["wifi"])), "A"),
               Rule((Condition("user.visits", "ge", 3),), "C")),
        default="B",
        known_actions=("A", "B", "C"),
    )


def test_baseline_rules_choose_in_order():
    rules = _rules()
    assert rules.choose({"user": {"device": "mobile", "network": "wifi"}}, ["A", "B", "C"]) == "A"
    assert rules.choose({"user": {"device": "mobile", "network": "cellular", "visits": 4.0}}, ["A", "B", "C"]) == "C"
    assert rules.choose({"user": {"device": "desktop"}}, ["A", "B", "C"]) == "B"
    assert rules.choose({"user": {"device": "mobile", "network": "wifi"}}, ["B", "C"]) == "B"
    assert rules.choose({}, ["C"]) == "C"


def test_baseline_rule_with_unknown_action_rejected():
    with pytest.raises(ValueError, match="unknown action 'Z'"):
        BaselineRules(rules=(Rule((), "Z"),), default="A", known_actions=("A",))
    with pytest.raises(ValueError, match="operator"):
        Condition("user.device", "matches", "x")
    with pytest.raises(ValueError, match="number"):
        Condition("user.hour", "lt", "ten")


def test_apprentice_returns_baseline_and_reports_match_rate():
    clock = FakeClock()
    settings = PolicySettings("ap", learning_mode=LearningMode.APPRENTICE, baseline=_rules(),
                              exploration=SquareCB(), join=JoinSettings(reward_wait_time=2.0))
    loop = DecisionLoop(settings, clock=clock)
    rng = np.random.default_rng(0)
    for _ in range(600):
        clock.now += 1
        context = {"user": {"device": "mobile" if rng.random() < 0.5 else "desktop", "network": "wifi"}}
        decision = loop.choose(context, ACTIONS)
        assert decision.chosen_action == _rules().choose(context, ["A", "B", "C"])
        assert decision.probability == 1.0
        loop.reward(decision.event_id, 1.0)
        loop.advance()
    assert loop.learner.apprentice_match_rate is not None
    assert loop.learner.apprentice_match_rate > 0.8


def test_logging_only_learns_nothing(tmp_path):
    clock = FakeClock()
    settings = PolicySettings("lo", learning_mode=LearningMode.LOGGING_ONLY, join=JoinSettings(reward_wait_time=1.0))
    loop = DecisionLoop(settings, tmp_path, clock=clock)
    for _ in range(20):
        clock.now += 1
        decision = loop.choose({"user": {"device": "mobile"}}, ACTIONS)
        assert decision.chosen_action == "A"
        loop.reward(decision.event_id, 1.0)
        loop.advance()
    loop.flush()
    assert loop.learner.stats().examples_learned == 0
    assert sum(isinstance(r, JoinedEvent) for r in read_records(tmp_path / "events")) == 20


def test_no_consent_answers_but_does_not_log(tmp_path):
    loop = DecisionLoop(PolicySettings("c"), tmp_path, clock=FakeClock())
    decision = loop.choose({"user": {"device": "mobile"}}, ACTIONS, consent=False)
    assert decision.chosen_action in {"A", "B", "C"}
    loop.flush()
    assert read_records(tmp_path / "events") == []


def test_restart_restores_checkpoint_and_replays_log(tmp_path):
    clock = FakeClock()
    settings = PolicySettings("rs", exploration=SquareCB(), seed=5, join=JoinSettings(reward_wait_time=3.0))
    loop = DecisionLoop(settings, tmp_path, clock=clock)
    _run(loop, clock, 200, seed=3, wait=3.0)
    loop.checkpoint()
    checkpoint_examples = loop.learner.stats().examples_learned
    _run(loop, clock, 100, seed=4, wait=3.0)  # learned after the checkpoint, logged only
    loop.flush()
    expected = loop.learner.stats()
    reference_pmf = loop.policy.pmf({"user": {"device": "mobile"}}, ACTIONS)
    pending_before = loop.learner.joiner.pending_count
    assert expected.examples_learned > checkpoint_examples

    restarted = DecisionLoop(settings, tmp_path, clock=clock)
    stats = restarted.learner.stats()
    assert stats.examples_learned == expected.examples_learned
    assert stats.model_version >= expected.model_version
    assert restarted.learner.joiner.pending_count == pending_before
    restored_pmf = restarted.policy.pmf({"user": {"device": "mobile"}}, ACTIONS)
    for action_id, probability in reference_pmf.items():
        assert restored_pmf[action_id] == pytest.approx(probability, abs=1e-6)

    # Pending decisions from before the restart still join after it.
    clock.now += 10
    joined = restarted.advance()
    assert len(joined) == pending_before
    restarted.close()
    records = read_records(tmp_path / "events")
    decisions = {r.event_id for r in records if isinstance(r, DecisionRecord)}
    joined_ids = [r.decision.event_id for r in records if isinstance(r, JoinedEvent)]
    assert sorted(joined_ids) == sorted(decisions)
    assert all(r.status is not RewardStatus.ORPHAN for r in records if isinstance(r, RewardRecord))


def test_reward_for_unknown_event_is_held(tmp_path):
    loop = DecisionLoop(PolicySettings("o", join=JoinSettings(orphan_hold_time=5.0)), tmp_path, clock=FakeClock())
    assert loop.reward("never-decided", 1.0) is RewardStatus.PENDING_DECISION
    loop.clock.now += 6
    loop.advance()
    loop.flush()
    statuses = [r.status for r in read_records(tmp_path / "events") if isinstance(r, RewardRecord)]
    assert statuses == [RewardStatus.PENDING_DECISION, RewardStatus.ORPHAN]
    assert loop.learner.stats().orphan_rewards == 1
