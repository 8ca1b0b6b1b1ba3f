"""The decider's decision path without Ray: validation, decisions, replay, buffering, model swap."""

from __future__ import annotations

import itertools
import math

import pytest

from bandit.errors import BackpressureError, CheckpointError
from bandit.events import JoinedEvent, JoinOutcome
from bandit.policy import Policy
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving.config import MicrobanditConfig, parse_config
from serving.decider import DeciderCore, pseudonymize
from serving.errors import AuthenticationError, MessageTooLargeError, UnknownPolicyError

KEY = b"unit-test-key"
ACTIONS = ["a", "b", "c", "d"]


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _config(**server: object) -> MicrobanditConfig:
    return parse_config(
        {
            "server": {"max_message_bytes": 4096, "decision_buffer_size": 50, "event_id_memory": 10, **server},
            "policies": [
                {"name": "p1", "seed": 11, "max_actions": 8, "exploration": {"type": "epsilon_greedy", "epsilon": 0.2}},
                {"name": "strict", "require_consent": True},
            ],
        }
    )


def _core(**server: object) -> DeciderCore:
    counter = itertools.count()
    return DeciderCore(_config(**server), KEY, FakeClock(), new_event_id=lambda: f"gen-{next(counter)}")


def _request(policy: str = "p1", **fields: object) -> pb.ChooseRequest:
    request = pb.ChooseRequest(
        policy=policy,
        context={"device": pb.Namespace(features={"type": pb.FeatureValue(string_value="mobile")})},
        actions=[pb.Action(id=a) for a in ACTIONS],
    )
    for name, value in fields.items():
        if name in ("actions", "excluded_action_ids"):
            request.ClearField(name)
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


def test_choose_returns_valid_pmf_and_buffers() -> None:
    core = _core()
    response = core.choose(_request())
    probabilities = [r.probability for r in response.ranking]
    assert response.event_id == "gen-0"
    assert sorted(r.action_id for r in response.ranking) == ACTIONS
    assert abs(sum(probabilities) - 1.0) <= 1e-6
    assert probabilities == sorted(probabilities, reverse=True)
    assert dict((r.action_id, r.probability) for r in response.ranking)[response.action_id] == response.probability
    assert response.learning_mode == pb.LEARNING_MODE_ONLINE
    buffered = core.take_buffer("p1")
    assert [d.event_id for d in buffered] == ["gen-0"]
    assert buffered[0].probability == response.probability
    assert core.take_buffer("p1") == []


def test_same_event_id_same_choice_across_replicas() -> None:
    first = _core().choose(_request(event_id="evt-1"))
    second = _core().choose(_request(event_id="evt-1"))
    assert first.action_id == second.action_id
    assert list(first.ranking) == list(second.ranking)


def test_repeated_event_id_replays_without_logging_twice() -> None:
    core = _core()
    first = core.choose(_request(event_id="evt-9"))
    again = core.choose(_request(event_id="evt-9", actions=[pb.Action(id="z")]))
    assert again.replayed
    assert again.action_id == first.action_id
    assert len(core.take_buffer("p1")) == 1


def test_replay_memory_is_bounded() -> None:
    core = _core(event_id_memory=2)
    for i in range(3):
        core.choose(_request(event_id=f"e{i}"))
    assert not core.choose(_request(event_id="e0")).replayed
    assert core.choose(_request(event_id="e2")).replayed


def test_excluded_actions_are_never_chosen() -> None:
    core = _core()
    for i in range(30):
        response = core.choose(_request(event_id=f"x{i}", excluded_action_ids=["a", "b"]))
        assert response.action_id in ("c", "d")
        assert sorted(r.action_id for r in response.ranking) == ["c", "d"]


def test_user_id_is_pseudonymized() -> None:
    core = _core()
    core.choose(_request(user_id="alice@example.org"))
    record = core.take_buffer("p1")[0]
    assert record.user_id == pseudonymize("alice@example.org", KEY)
    assert "alice" not in record.user_id
    assert len(record.user_id) == 32


def test_consent_controls_logging() -> None:
    core = _core()
    core.choose(_request(consent=pb.CONSENT_DENIED))
    core.choose(_request(policy="strict"))
    core.choose(_request(policy="strict", consent=pb.CONSENT_GRANTED))
    assert core.take_buffer("p1") == []
    assert len(core.take_buffer("strict")) == 1


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"policy": ""}, "policy is empty"),
        ({"policy": "a b"}, "policy: policy name"),
        ({"actions": []}, "actions is empty"),
        ({"actions": [pb.Action(id="a"), pb.Action(id="a")]}, r"actions\[1\]\.id 'a' is a duplicate"),
        ({"actions": [pb.Action(id=f"x{i}") for i in range(9)]}, "more than the policy's max_actions of 8"),
        ({"actions": [pb.Action(id="")]}, r"actions\[0\]\.id is empty"),
        ({"excluded_action_ids": ["zz"]}, r"excluded_action_ids\[0\] 'zz' is not an id"),
        ({"excluded_action_ids": ACTIONS}, "excludes every action"),
        ({"event_id": "has space"}, "event_id 'has space' is invalid"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"user_id": "u" * 300}, "user_id has 300 characters"),
    ],
)
def test_invalid_request_names_field(request_fields: dict[str, object], message: str) -> None:
    core = _core()
    with pytest.raises(ValueError, match=message):
        core.choose(_request(**request_fields))
    assert core.take_buffer("p1") == []


@pytest.mark.parametrize(
    ("namespace", "features", "message"),
    [
        ("device", {"w": pb.FeatureValue(number_value=math.nan)}, "context.device.w must be a finite number"),
        ("device", {"w": pb.FeatureValue(number_value=-math.inf)}, "context.device.w must be a finite number"),
        ("device", {"w": pb.FeatureValue()}, "context.device.w has no value"),
        ("device", {"w": pb.FeatureValue(string_value="v" * 257)}, "longer than 256"),
        ("bad-name", {"w": pb.FeatureValue(bool_value=True)}, "namespace name 'bad-name' is invalid"),
    ],
)
def test_invalid_feature_names_field(namespace: str, features: dict[str, pb.FeatureValue], message: str) -> None:
    request = _request()
    request.context[namespace].CopyFrom(pb.Namespace(features=features))
    with pytest.raises(ValueError, match=message):
        _core().choose(request)


def test_missing_context_rejected() -> None:
    request = _request()
    request.ClearField("context")
    with pytest.raises(ValueError, match="context is missing"):
        _core().choose(request)
    request.context["device"].CopyFrom(pb.Namespace())
    with pytest.raises(ValueError, match="context is missing"):
        _core().choose(request)


def test_unknown_policy_is_not_found_error() -> None:
    with pytest.raises(UnknownPolicyError, match="'other' is not a configured policy"):
        _core().choose(_request(policy="other"))


def test_oversized_message_rejected() -> None:
    request = _request()
    request.context["big"].CopyFrom(pb.Namespace(features={"t": pb.FeatureValue(string_value="x" * 250)} | {
        f"f{i}": pb.FeatureValue(number_value=float(i)) for i in range(400)
    }))
    with pytest.raises(MessageTooLargeError, match="more than the limit of 4096 bytes"):
        _core().choose(request)


def test_batch_all_or_nothing() -> None:
    core = _core()
    batch = pb.ChooseBatchRequest(requests=[_request(), _request(actions=[])])
    with pytest.raises(ValueError, match=r"requests\[1\]\.actions is empty"):
        core.choose_batch(batch)
    assert core.take_buffer("p1") == []

    good = core.choose_batch(pb.ChooseBatchRequest(requests=[_request(), _request(policy="strict", consent=1)]))
    assert len(good.responses) == 2
    assert len(core.take_buffer("p1")) == 1


def test_batch_limits() -> None:
    core = _core(max_batch_size=3)
    with pytest.raises(ValueError, match="requests is empty"):
        core.choose_batch(pb.ChooseBatchRequest())
    with pytest.raises(ValueError, match="more than the max_batch_size of 3"):
        core.choose_batch(pb.ChooseBatchRequest(requests=[_request()] * 4))


def test_full_buffer_applies_backpressure() -> None:
    core = _core(decision_buffer_size=3)
    for _ in range(3):
        core.choose(_request())
    with pytest.raises(BackpressureError, match="decision_buffer_size"):
        core.choose(_request())
    core.take_buffer("p1")
    core.choose(_request())


def test_return_to_buffer_drops_oldest_beyond_limit() -> None:
    core = _core(decision_buffer_size=3)
    for _ in range(2):
        core.choose(_request())
    taken = core.take_buffer("p1")
    core.choose(_request())
    core.choose(_request())
    assert core.return_to_buffer("p1", taken) == 1
    assert [d.event_id for d in core.take_buffer("p1")] == ["gen-1", "gen-2", "gen-3"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"value": math.nan}, "value must be a finite number"),
        ({"value": math.inf}, "value must be a finite number"),
        ({"value": 1.5}, r"outside the policy's reward_range \[0.0, 1.0\]"),
        ({"event_id": ""}, "event_id '' is invalid"),
        ({"reward_id": "bad id"}, "reward_id 'bad id' is invalid"),
        ({"policy": ""}, "policy is empty: the server has 2 policies"),
    ],
)
def test_invalid_reward_names_field(fields: dict[str, object], message: str) -> None:
    request = pb.RewardRequest(policy="p1", event_id="e1", value=1.0)
    for name, value in fields.items():
        setattr(request, name, value)
    with pytest.raises(ValueError, match=message):
        _core().reward_input(request)


def test_valid_reward_and_activation_inputs() -> None:
    core = _core()
    reward = core.reward_input(pb.RewardRequest(policy="p1", event_id="e1", value=0.5, reward_id="r-1"))
    assert (reward.policy, reward.event_id, reward.value, reward.reward_id) == ("p1", "e1", 0.5, "r-1")
    assert core.activate_input(pb.ActivateRequest(policy="strict", event_id="e2")) == ("strict", "e2")


def test_install_model_swaps_snapshot() -> None:
    core = _core()
    decision = core.choose(_request(event_id="learn-1"))
    record = core.take_buffer("p1")[0]
    trained = Policy(core.slots["p1"].settings)
    trained.learn(JoinedEvent(record, 1.0, JoinOutcome.OBSERVED, 1, record.timestamp))
    trained.model_version = 4
    assert core.install_model("p1", trained.to_checkpoint()) == 4
    assert core.choose(_request()).model_version == 4
    assert decision.model_version == 0
    trained.close()


def test_install_model_rejects_corrupt_bytes() -> None:
    core = _core()
    with pytest.raises(CheckpointError, match="magic"):
        core.install_model("p1", b"not a checkpoint")
    assert core.choose(_request()).model_version == 0


def test_token_required_when_configured() -> None:
    core = DeciderCore(_config(), KEY, FakeClock(), auth_token="s3cret-token")
    core.authenticate([("authorization", "Bearer s3cret-token")])
    core.authenticate([("x-other", "1"), ("Authorization", b"Bearer s3cret-token")])
    with pytest.raises(AuthenticationError, match="metadata is missing"):
        core.authenticate([("x-other", "1")])
    with pytest.raises(AuthenticationError, match="wrong token") as raised:
        core.authenticate([("authorization", "Bearer guess")])
    assert "s3cret" not in str(raised.value)


def test_no_token_configured_accepts_any_call() -> None:
    _core().authenticate([])
