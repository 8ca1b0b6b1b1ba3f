"""VW policies: PMF validity, keying by id, reward sign, checkpoints, argument allowlist."""

import itertools
import math

import numpy as np
import pytest

from bandit import (
    Action,
    Bag,
    CheckpointError,
    Cover,
    EpsilonGreedy,
    ExploreFirst,
    InvalidPmfError,
    JoinedEvent,
    JoinOutcome,
    Policy,
    PolicySettings,
    RegCB,
    Softmax,
    SquareCB,
)
from bandit.policy import sample_index, uniform_draw, validate_pmf
from bandit.vwargs import validate_vw_args

STRATEGIES = [EpsilonGreedy(0.1), SquareCB(), Bag(4), Cover(3), Softmax(5.0), RegCB(), ExploreFirst(20)]
ACTIONS = [Action(f"act{i}", {"style": {"color": f"c{i % 3}", "size": float(i)}}) for i in range(6)]
CONTEXTS = [{"user": {"device": d, "hour": float(h)}} for d in ("mobile", "desktop") for h in (8, 20)]


def _assert_valid(pmf, ids):
    assert list(pmf) == list(ids)
    assert all(0.0 <= p <= 1.0 for p in pmf.values())
    assert abs(math.fsum(pmf.values()) - 1.0) <= 1e-6


def _train(policy, rounds, seed=0, best="act2"):
    rng = np.random.default_rng(seed)
    for i in range(rounds):
        context = CONTEXTS[int(rng.integers(len(CONTEXTS)))]
        decision = policy.decide(context, ACTIONS, event_id=f"e{seed}-{i}", timestamp=float(i))
        reward = 1.0 if decision.chosen_action == best else 0.0
        policy.learn(JoinedEvent(decision, reward, JoinOutcome.OBSERVED, 1, float(i)))


@pytest.mark.parametrize("exploration", STRATEGIES, ids=lambda e: e.name)
def test_pmf_valid_before_and_after_learning(exploration):
    policy = Policy(PolicySettings("p", exploration=exploration, seed=3))
    ids = [a.id for a in ACTIONS]
    for context in CONTEXTS:
        _assert_valid(policy.pmf(context, ACTIONS), ids)
    _train(policy, 200)
    for context in CONTEXTS:
        _assert_valid(policy.pmf(context, ACTIONS), ids)
    assert policy.has_finite_weights()


@pytest.mark.parametrize("exploration", [EpsilonGreedy(0.1), SquareCB(), Softmax(5.0)], ids=lambda e: e.name)
def test_pmf_keyed_by_id_under_permutation(exploration):
    policy = Policy(PolicySettings("p", exploration=exploration))
    _train(policy, 200)
    reference = policy.pmf(CONTEXTS[0], ACTIONS)
    for permutation in itertools.islice(itertools.permutations(ACTIONS), 0, 720, 97):
        permuted = policy.pmf(CONTEXTS[0], list(permutation))
        for action_id, probability in reference.items():
            assert permuted[action_id] == pytest.approx(probability, abs=1e-6)


@pytest.mark.parametrize("exploration", STRATEGIES, ids=lambda e: e.name)
def test_higher_reward_gets_more_probability(exploration):
    policy = Policy(PolicySettings("p", exploration=exploration, seed=1))
    _train(policy, 400, best="act2")
    pmf = policy.pmf(CONTEXTS[0], ACTIONS)
    others = [p for action_id, p in pmf.items() if action_id != "act2"]
    assert pmf["act2"] > max(others)


@pytest.mark.parametrize("exploration", STRATEGIES, ids=lambda e: e.name)
def test_checkpoint_restores_pmf_and_resumes_learning(exploration):
    settings = PolicySettings("p", exploration=exploration, seed=7)
    original = Policy(settings)
    _train(original, 60, seed=1)
    original.model_version = 4
    restored = Policy.from_checkpoint(original.to_checkpoint(), settings)
    assert restored.model_version == 4
    assert restored.examples_learned == 60
    for context in CONTEXTS:
        before, after = original.pmf(context, ACTIONS), restored.pmf(context, ACTIONS)
        for action_id in before:
            assert after[action_id] == pytest.approx(before[action_id], abs=1e-9)
    # Both continue on the same events and stay identical.
    rng = np.random.default_rng(5)
    for i in range(40):
        context = CONTEXTS[int(rng.integers(len(CONTEXTS)))]
        decision = original.decide(context, ACTIONS, event_id=f"x{i}", timestamp=0.0)
        event = JoinedEvent(decision, float(rng.random() < 0.5), JoinOutcome.OBSERVED, 1, 0.0)
        original.learn(event)
        restored.learn(event)
    for context in CONTEXTS:
        before, after = original.pmf(context, ACTIONS), restored.pmf(context, ACTIONS)
        for action_id in before:
            assert after[action_id] == pytest.approx(before[action_id], abs=1e-9)


def test_checkpoint_with_incompatible_settings_rejected():
    data = Policy(PolicySettings("p", exploration=SquareCB())).to_checkpoint()
    with pytest.raises(CheckpointError, match="model settings"):
        Policy.from_checkpoint(data, PolicySettings("p", exploration=EpsilonGreedy()))
    with pytest.raises(CheckpointError, match="model settings"):
        Policy.from_checkpoint(data, PolicySettings("p", exploration=SquareCB(), bit_precision=20))


def test_checkpoint_corrupt_or_missing_rejected(tmp_path):
    data = bytearray(Policy(PolicySettings("p")).to_checkpoint())
    data[-5] ^= 0xFF
    with pytest.raises(CheckpointError, match="SHA-256"):
        Policy.from_checkpoint(bytes(data), PolicySettings("p"))
    with pytest.raises(CheckpointError, match="magic"):
        Policy.from_checkpoint(b"not a checkpoint", PolicySettings("p"))
    with pytest.raises(CheckpointError, match="cannot read"):
        Policy.load(tmp_path / "missing.mbk", PolicySettings("p"))
    path = tmp_path / "truncated.mbk"
    path.write_bytes(bytes(data[:40]))
    with pytest.raises(CheckpointError, match="corrupt"):
        Policy.load(path, PolicySettings("p"))


def test_excluded_actions_removed_and_single_action_certain():
    policy = Policy(PolicySettings("p"))
    pmf = policy.pmf(CONTEXTS[0], ACTIONS, excluded_ids=["act0", "act1"])
    assert set(pmf) == {a.id for a in ACTIONS[2:]}
    assert policy.pmf(CONTEXTS[0], ACTIONS[:1]) == {"act0": 1.0}
    with pytest.raises(ValueError, match="no eligible actions"):
        policy.pmf(CONTEXTS[0], ACTIONS[:1], excluded_ids=["act0"])


def test_decide_is_reproducible_per_event_id():
    first = Policy(PolicySettings("p", exploration=EpsilonGreedy(0.5), seed=11))
    second = Policy(PolicySettings("p", exploration=EpsilonGreedy(0.5), seed=11))
    chosen_first = [first.decide(CONTEXTS[0], ACTIONS, event_id=f"e{i}", timestamp=0.0).chosen_action for i in range(50)]
    chosen_second = [second.decide(CONTEXTS[0], ACTIONS, event_id=f"e{i}", timestamp=0.0).chosen_action for i in range(50)]
    assert chosen_first == chosen_second
    assert len(set(chosen_first)) > 1


def test_logged_probability_is_sampled_probability():
    policy = Policy(PolicySettings("p", exploration=EpsilonGreedy(0.3)))
    for i in range(50):
        record = policy.decide(CONTEXTS[1], ACTIONS, event_id=f"e{i}", timestamp=0.0)
        assert record.probability == record.pmf[record.action_ids.index(record.chosen_action)]
        assert record.probability > 0


def test_uniform_draw_is_uniform_and_seeded():
    draws = np.array([uniform_draw(3, f"event-{i}") for i in range(20000)])
    assert abs(draws.mean() - 0.5) < 0.01
    assert ((draws >= 0) & (draws < 1)).all()
    assert uniform_draw(3, "x") == uniform_draw(3, "x")
    assert uniform_draw(3, "x") != uniform_draw(4, "x")


def test_sample_index_skips_zero_probability():
    assert sample_index([0.0, 1.0, 0.0], 0.999999) == 1
    assert sample_index([0.5, 0.5, 0.0], 0.9999999999) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [([0.5, 0.4], "sums to"), ([0.5, float("nan")], "outside"), ([1.5, -0.5], "outside"), ([1.0], "entries")],
)
def test_validate_pmf_raises(values, message):
    with pytest.raises(InvalidPmfError, match=message):
        validate_pmf(values, 2)


@pytest.mark.parametrize(
    "args",
    ["-d train.txt", "-f model.vw", "-i model.vw", "--cache_file c", "--readable_model r.txt",
     "--invert_hash h", "--cb 4", "--oaa 3", "--epsilon 0.2", "--daemon"],
)
def test_vw_args_allowlist_rejects(args):
    option = args.split()[0]
    with pytest.raises(ValueError, match=f"VW option '{option}' is not allowed"):
        validate_vw_args(args)


def test_vw_args_allowlist_accepts_and_checks_values():
    assert validate_vw_args("-l 0.1 --power_t=0 --cb_type dr") == (
        "--learning_rate", "0.1", "--power_t", "0", "--cb_type", "dr")
    with pytest.raises(ValueError, match="needs a number"):
        validate_vw_args("--l2 abc")
    with pytest.raises(ValueError, match="one of"):
        validate_vw_args("--cb_type bogus")
    with pytest.raises(ValueError, match="invalid"):
        PolicySettings("bad name!")


def test_undeclared_namespace_rejected_by_default_setting():
    policy = Policy(PolicySettings("p", accepted_namespaces=("user", "style")))
    with pytest.raises(ValueError, match="namespace 'tracking' is not accepted"):
        policy.pmf({"user": {"device": "mobile"}, "tracking": {"ip": "x"}}, ACTIONS)


def test_undeclared_namespace_dropped_and_logged_once(caplog):
    policy = Policy(PolicySettings("p", accepted_namespaces=("user",), undeclared_namespaces="drop"))
    with caplog.at_level("WARNING", logger="bandit.policy"):
        for i in range(3):
            record = policy.decide({"user": {"device": "mobile"}, "tracking": {"ip": "x"}}, ACTIONS,
                                   event_id=f"e{i}", timestamp=0.0)
            assert set(record.context) == {"user"}
            assert all(not a.features for a in record.actions)
    assert sum("tracking" in message for message in caplog.messages) == 1
    assert sum("style" in message for message in caplog.messages) == 1
