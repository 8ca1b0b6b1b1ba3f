"""End-to-end tests of the real server (Ray Serve + gRPC on loopback) through the client.

The tests share one server started by the ``server`` fixture. They run in
file order; the restart test comes last and checks that everything the
earlier tests sent is in the event log.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest

from bandit.eventlog import read_events
from bandit.learner import CHECKPOINT_NAME
from bandit.policy import Policy
from protos.microbandit.v1 import decision_service_pb2 as pb
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc
from serving.client import ChooseArgs, ClientError, Decision, DecisionClient
from serving.config import load_config
from serving.learner import policy_data_dir

from .conftest import (
    CONSENT_POLICY,
    MAX_ACTIONS,
    MAX_MESSAGE_BYTES,
    SYNTHETIC_POLICY,
    ServerProcess,
    listening_addresses,
)

pytestmark = pytest.mark.integration

ACTIONS = [f"a{i}" for i in range(10)]
SEGMENTS = ("s0", "s1", "s2")
BEST_ACTION = {"s0": "a7", "s1": "a2", "s2": "a5"}
DECISIONS = 2000
LAST_WINDOW = 500
PMF_TOLERANCE = 1e-6


@dataclass
class Ledger:
    """What the tests sent that the server must have logged."""

    decisions: set[str] = field(default_factory=set)
    not_logged: set[str] = field(default_factory=set)
    rewards: int = 0


LEDGER = Ledger()


def _context(segment: str, hour: int) -> dict[str, dict[str, object]]:
    return {"user": {"segment": segment}, "time": {"hour": float(hour)}}


def _assert_valid_pmf(decision: Decision, eligible: set[str]) -> None:
    ids = [action_id for action_id, _ in decision.ranking]
    probabilities = [p for _, p in decision.ranking]
    assert sorted(ids) == sorted(eligible)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert abs(sum(probabilities) - 1.0) <= PMF_TOLERANCE
    assert decision.pmf[decision.action_id] == decision.probability
    assert decision.probability > 0.0


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> DecisionClient:
    with DecisionClient(server.address, timeout=10.0) as connected:
        connected.wait_ready()
        yield connected


def test_served_choices_improve(client: DecisionClient) -> None:
    generator = np.random.default_rng(20261204)
    chose_best: list[bool] = []
    versions: list[int] = []
    # Earlier modules may restart the session server, which starts a new
    # model version even for a policy that learned nothing.
    start_version = client.get_policy(SYNTHETIC_POLICY).model_version
    for _ in range(DECISIONS):
        segment = SEGMENTS[int(generator.integers(len(SEGMENTS)))]
        decision = client.choose(SYNTHETIC_POLICY, _context(segment, int(generator.integers(24))), ACTIONS)
        _assert_valid_pmf(decision, set(ACTIONS))
        best = decision.action_id == BEST_ACTION[segment]
        chose_best.append(best)
        versions.append(decision.model_version)
        LEDGER.decisions.add(decision.event_id)
        status = client.reward(decision.event_id, 1.0 if best else 0.0, policy=SYNTHETIC_POLICY)
        assert status == "accepted"
        LEDGER.rewards += 1

    first_rate = float(np.mean(chose_best[:100]))
    last_rate = float(np.mean(chose_best[-LAST_WINDOW:]))
    assert versions[0] == start_version
    assert versions[-1] >= start_version + 5, f"only {versions[-1] - start_version} new model versions reached the decider"
    assert last_rate >= 0.8, f"best action chosen {last_rate:.1%} of the last {LAST_WINDOW} decisions"
    assert last_rate > first_rate + 0.3, f"no improvement: first 100 {first_rate:.1%}, last {last_rate:.1%}"


def test_choose_batch_returns_valid_decisions(client: DecisionClient) -> None:
    requests = [
        ChooseArgs(SYNTHETIC_POLICY, _context(SEGMENTS[i % 3], i % 24), ACTIONS, excluded_action_ids=["a0"])
        for i in range(100)
    ]
    decisions = client.choose_batch(requests)
    assert len(decisions) == 100
    for decision in decisions:
        _assert_valid_pmf(decision, set(ACTIONS) - {"a0"})
        assert decision.action_id != "a0"
        LEDGER.decisions.add(decision.event_id)


def test_repeated_event_id_returns_original(client: DecisionClient) -> None:
    first = client.choose(SYNTHETIC_POLICY, _context("s0", 3), ACTIONS, event_id="repeat-me-1")
    again = client.choose(SYNTHETIC_POLICY, _context("s1", 9), ACTIONS[:3], event_id="repeat-me-1")
    assert not first.replayed
    assert again.replayed
    assert again.action_id == first.action_id
    assert again.ranking == first.ranking
    LEDGER.decisions.add(first.event_id)


def test_deferred_decision_activates(client: DecisionClient) -> None:
    decision = client.choose(SYNTHETIC_POLICY, _context("s2", 12), ACTIONS, defer_activation=True)
    LEDGER.decisions.add(decision.event_id)
    assert client.activate(decision.event_id, policy=SYNTHETIC_POLICY) is True


def test_consent_denied_is_answered_not_logged(client: DecisionClient) -> None:
    denied = client.choose(SYNTHETIC_POLICY, _context("s0", 1), ACTIONS, consent=False)
    unspecified_strict = client.choose(CONSENT_POLICY, _context("s0", 1), ACTIONS)
    granted_strict = client.choose(CONSENT_POLICY, _context("s0", 1), ACTIONS, consent=True)
    assert denied.action_id in ACTIONS
    assert unspecified_strict.action_id in ACTIONS
    LEDGER.not_logged.update({denied.event_id, unspecified_strict.event_id})
    LEDGER.decisions.add(granted_strict.event_id)


def _choose_request(**changes: object) -> pb.ChooseRequest:
    request = pb.ChooseRequest(
        policy=SYNTHETIC_POLICY,
        context={"user": pb.Namespace(features={"segment": pb.FeatureValue(string_value="s0")})},
        actions=[pb.Action(id=a) for a in ACTIONS],
    )
    for name, value in changes.items():
        if name == "context":
            request.ClearField("context")
            for ns, features in value.items():  # type: ignore[attr-defined]
                request.context[ns].CopyFrom(pb.Namespace(features=features))
        elif name in ("actions", "excluded_action_ids"):
            request.ClearField(name)
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


BadCall = Callable[[pb_grpc.DecisionServiceStub], object]

BAD_INPUTS: list[tuple[str, BadCall, grpc.StatusCode, str]] = [
    ("unknown policy", lambda s: s.Choose(_choose_request(policy="nope")), grpc.StatusCode.NOT_FOUND, "policy"),
    ("policy name chars", lambda s: s.Choose(_choose_request(policy="../etc")), grpc.StatusCode.INVALID_ARGUMENT, "policy"),
    ("empty actions", lambda s: s.Choose(_choose_request(actions=[])), grpc.StatusCode.INVALID_ARGUMENT, "actions"),
    (
        "empty action id",
        lambda s: s.Choose(_choose_request(actions=[pb.Action(id="a"), pb.Action(id="")])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "actions[1].id",
    ),
    (
        "duplicate action ids",
        lambda s: s.Choose(_choose_request(actions=[pb.Action(id="a"), pb.Action(id="a")])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "actions[1].id",
    ),
    (
        "too many actions",
        lambda s: s.Choose(_choose_request(actions=[pb.Action(id=f"x{i}") for i in range(MAX_ACTIONS + 1)])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_actions",
    ),
    (
        "nan feature",
        lambda s: s.Choose(_choose_request(context={"user": {"age": pb.FeatureValue(number_value=math.nan)}})),
        grpc.StatusCode.INVALID_ARGUMENT,
        "context.user.age",
    ),
    (
        "infinite action feature",
        lambda s: s.Choose(
            _choose_request(
                actions=[
                    pb.Action(id="a"),
                    pb.Action(id="b", features={"f": pb.Namespace(features={"w": pb.FeatureValue(number_value=math.inf)})}),
                ]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "actions[1].features.f.w",
    ),
    (
        "oversized feature value",
        lambda s: s.Choose(_choose_request(context={"user": {"name": pb.FeatureValue(string_value="x" * 300)}})),
        grpc.StatusCode.INVALID_ARGUMENT,
        "context.user",
    ),
    (
        "bad namespace name",
        lambda s: s.Choose(_choose_request(context={"us er": {"a": pb.FeatureValue(bool_value=True)}})),
        grpc.StatusCode.INVALID_ARGUMENT,
        "namespace",
    ),
    ("missing context", lambda s: s.Choose(_choose_request(context={})), grpc.StatusCode.INVALID_ARGUMENT, "context"),
    ("event id chars", lambda s: s.Choose(_choose_request(event_id="bad id!")), grpc.StatusCode.INVALID_ARGUMENT, "event_id"),
    (
        "excluded every action",
        lambda s: s.Choose(_choose_request(excluded_action_ids=ACTIONS)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "excluded_action_ids",
    ),
    (
        "batch with one bad request",
        lambda s: s.ChooseBatch(pb.ChooseBatchRequest(requests=[_choose_request(), _choose_request(actions=[])])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "requests[1].actions",
    ),
    (
        "reward nan",
        lambda s: s.Reward(pb.RewardRequest(policy=SYNTHETIC_POLICY, event_id="e1", value=math.nan)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "value",
    ),
    (
        "reward infinite",
        lambda s: s.Reward(pb.RewardRequest(policy=SYNTHETIC_POLICY, event_id="e1", value=-math.inf)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "value",
    ),
    (
        "reward outside range",
        lambda s: s.Reward(pb.RewardRequest(policy=SYNTHETIC_POLICY, event_id="e1", value=5.0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "reward_range",
    ),
    (
        "reward bad event id",
        lambda s: s.Reward(pb.RewardRequest(policy=SYNTHETIC_POLICY, event_id="", value=1.0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "event_id",
    ),
    (
        "reward unknown policy",
        lambda s: s.Reward(pb.RewardRequest(policy="nope", event_id="e1", value=1.0)),
        grpc.StatusCode.NOT_FOUND,
        "policy",
    ),
    (
        "activate unknown event",
        lambda s: s.Activate(pb.ActivateRequest(policy=SYNTHETIC_POLICY, event_id="never-decided-1")),
        grpc.StatusCode.NOT_FOUND,
        "never-decided-1",
    ),
    ("get unknown policy", lambda s: s.GetPolicy(pb.GetPolicyRequest(policy="nope")), grpc.StatusCode.NOT_FOUND, "nope"),
]


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> pb_grpc.DecisionServiceStub:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.DecisionServiceStub(channel)


@pytest.mark.parametrize(("name", "call", "code", "field_name"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_status(
    stub: pb_grpc.DecisionServiceStub, name: str, call: BadCall, code: grpc.StatusCode, field_name: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call(stub)
    error = raised.value
    assert error.code() == code, f"{name}: {error.details()}"
    assert field_name in error.details()
    assert "Traceback" not in error.details()


@pytest.mark.parametrize("via", ["replica", "proxy"])
def test_oversized_message_is_resource_exhausted(server: ServerProcess, via: str) -> None:
    address = server.address if via == "replica" else server.proxy_address
    big = {f"f{i}": pb.FeatureValue(string_value="v" * 200) for i in range(MAX_MESSAGE_BYTES // 150)}
    request = _choose_request(context={"user": big})
    assert request.ByteSize() > MAX_MESSAGE_BYTES
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            pb_grpc.DecisionServiceStub(channel).Choose(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_bad_inputs_change_nothing(client: DecisionClient, stub: pb_grpc.DecisionServiceStub) -> None:
    before = client.get_policy(SYNTHETIC_POLICY)
    for _, call, _, _ in BAD_INPUTS:
        with pytest.raises(grpc.RpcError):
            call(stub)
    after = client.get_policy(SYNTHETIC_POLICY)
    assert after.decisions == before.decisions
    assert after.rewards == before.rewards
    assert after.examples_learned == before.examples_learned

    decision = client.choose(SYNTHETIC_POLICY, _context("s1", 5), ACTIONS)
    _assert_valid_pmf(decision, set(ACTIONS))
    LEDGER.decisions.add(decision.event_id)


def test_client_raises_typed_errors(client: DecisionClient) -> None:
    with pytest.raises(ClientError, match="NOT_FOUND"):
        client.get_policy("nope")
    with pytest.raises(ValueError, match="reward_range"):
        client.reward("e1", 2.0, policy=SYNTHETIC_POLICY)


def test_grpc_ports_listen_on_loopback_only(server: ServerProcess) -> None:
    listening = listening_addresses(set(server.pids()))

    ports = [int(a.rsplit(":", 1)[1]) for a in [server.proxy_address, *server.replica_addresses]]
    ports.append(server.http_port)
    assert len(server.replica_addresses) == 1
    for port in ports:
        assert port in listening, f"port {port} is not listening"
        assert listening[port] <= {"127.0.0.1", "::ffff:127.0.0.1"}, f"port {port} listens on {listening[port]}"


def test_second_server_on_same_port_fails_fast(server: ServerProcess) -> None:
    command = [sys.executable, "-m", "serving.cli", "serve", "--config", str(server.config_path)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"server.grpc_port {server.grpc_port} is not available" in result.stderr
    assert time.monotonic() - started < 60


def test_restart_continues_model_and_keeps_log(server: ServerProcess, client: DecisionClient) -> None:
    for i in range(20):
        decision = client.choose(SYNTHETIC_POLICY, _context(SEGMENTS[i % 3], i), ACTIONS)
        LEDGER.decisions.add(decision.event_id)
        client.reward(decision.event_id, 1.0, policy=SYNTHETIC_POLICY, reward_id=f"r{i}")
        LEDGER.rewards += 1
    before = client.get_policy(SYNTHETIC_POLICY)

    assert server.stop() == 0
    table = read_events(policy_data_dir(server.data_dir, SYNTHETIC_POLICY) / "events")
    kinds = table["kind"].to_pylist()
    event_ids = table["event_id"].to_pylist()
    logged_decisions = {e for k, e in zip(kinds, event_ids) if k == "decision"}
    strict_table = read_events(policy_data_dir(server.data_dir, CONSENT_POLICY) / "events")
    logged_decisions |= {e for k, e in zip(strict_table["kind"].to_pylist(), strict_table["event_id"].to_pylist()) if k == "decision"}
    assert LEDGER.decisions <= logged_decisions, f"missing {len(LEDGER.decisions - logged_decisions)} decisions"
    assert not LEDGER.not_logged & logged_decisions
    assert kinds.count("reward") == LEDGER.rewards
    events_dir = policy_data_dir(server.data_dir, SYNTHETIC_POLICY) / "events"
    leftovers = [path.name for path in events_dir.iterdir() if path.name.endswith(".tmp")]
    assert leftovers == [], "a half-written segment was left behind"
    settings = load_config(server.config_path).policy(SYNTHETIC_POLICY).build()
    checkpoint = policy_data_dir(server.data_dir, SYNTHETIC_POLICY) / CHECKPOINT_NAME
    restored = Policy.load(checkpoint, settings)
    assert restored.has_finite_weights()
    assert restored.examples_learned == before.examples_learned
    restored.close()

    server.start()
    with DecisionClient(server.address, timeout=10.0) as restarted:
        restarted.wait_ready()
        after = restarted.get_policy(SYNTHETIC_POLICY)
        assert after.model_version > before.model_version
        assert after.examples_learned == before.examples_learned

        decision = restarted.choose(SYNTHETIC_POLICY, _context("s0", 4), ACTIONS)
        assert decision.model_version == after.model_version
        assert restarted.reward(decision.event_id, 1.0, policy=SYNTHETIC_POLICY) == "accepted"
        assert restarted.get_policy(SYNTHETIC_POLICY).examples_learned == before.examples_learned + 1
