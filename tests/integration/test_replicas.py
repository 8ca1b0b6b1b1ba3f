"""Two decider replicas and token authentication.

Reward and Activate reach the policy's learner from either replica, and
every call needs the bearer token. This module starts its own server with
two replicas and a token (about 20 s) and stops it when the module ends.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

import grpc

from protos.microbandit.v1 import decision_service_pb2 as pb
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc
from serving.client import AuthenticationError, DecisionClient, UnavailableError
from serving.config import load_config

from .conftest import SYNTHETIC_POLICY, ServerProcess, listening_addresses

pytestmark = pytest.mark.integration

ACTIONS = ["a", "b", "c"]
TOKEN = "integration-test-token-1"


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("microbandit-replicas"), decider_replicas=2, auth_token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        if process.running:
            process.stop()


def test_each_replica_has_loopback_port(two_replicas: ServerProcess) -> None:
    assert len(two_replicas.replica_addresses) == 2
    listening = listening_addresses(set(two_replicas.pids()))
    for address in two_replicas.replica_addresses:
        port = int(address.rsplit(":", 1)[1])
        assert listening.get(port, set()) <= {"127.0.0.1", "::ffff:127.0.0.1"}
        assert port in listening


def test_reward_and_activate_cross_replicas(two_replicas: ServerProcess) -> None:
    first, second = two_replicas.replica_addresses
    with DecisionClient(first, timeout=10.0, token=TOKEN) as left, DecisionClient(second, timeout=10.0, token=TOKEN) as right:
        before = left.get_policy(SYNTHETIC_POLICY).examples_learned
        statuses = []
        for i in range(30):
            decision = left.choose(SYNTHETIC_POLICY, {"user": {"segment": f"s{i % 3}"}}, ACTIONS, defer_activation=True)
            assert right.activate(decision.event_id, policy=SYNTHETIC_POLICY) is True
            statuses.append(right.reward(decision.event_id, 1.0, policy=SYNTHETIC_POLICY))

        assert statuses == ["accepted"] * 30
        deadline = time.monotonic() + 10.0
        while right.get_policy(SYNTHETIC_POLICY).examples_learned < before + 30 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert right.get_policy(SYNTHETIC_POLICY).examples_learned == before + 30
        assert left.get_policy(SYNTHETIC_POLICY).examples_learned == before + 30


def test_both_replicas_pick_up_new_models(two_replicas: ServerProcess) -> None:
    first, second = two_replicas.replica_addresses
    with DecisionClient(first, timeout=10.0, token=TOKEN) as left, DecisionClient(second, timeout=10.0, token=TOKEN) as right:
        published = left.get_policy(SYNTHETIC_POLICY).model_version
        assert published > 0
        deadline = time.monotonic() + 10.0
        versions = (0, 0)
        while time.monotonic() < deadline:
            versions = tuple(
                client.choose(SYNTHETIC_POLICY, {"user": {"segment": "s0"}}, ACTIONS, consent=False).model_version
                for client in (left, right)
            )
            if min(versions) >= published:
                break
            time.sleep(0.2)
        assert min(versions) >= published


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_calls_without_right_token_rejected(two_replicas: ServerProcess, token: str | None) -> None:
    with DecisionClient(two_replicas.replica_addresses, timeout=10.0, token=token) as client:
        for _ in two_replicas.replica_addresses:
            with pytest.raises(AuthenticationError, match="UNAUTHENTICATED"):
                client.choose(SYNTHETIC_POLICY, {"user": {"segment": "s0"}}, ACTIONS)
        with pytest.raises(AuthenticationError, match="UNAUTHENTICATED"):
            client.get_policy(SYNTHETIC_POLICY)


def test_proxy_also_requires_token(two_replicas: ServerProcess) -> None:
    request = pb.ChooseRequest(
        policy=SYNTHETIC_POLICY,
        context={"user": pb.Namespace(features={"segment": pb.FeatureValue(string_value="s1")})},
        actions=[pb.Action(id=a) for a in ACTIONS],
    )
    with grpc.insecure_channel(two_replicas.proxy_address) as channel:
        stub = pb_grpc.DecisionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Choose(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKEN not in raised.value.details()
        response = stub.Choose(request, timeout=10, metadata=[("authorization", f"Bearer {TOKEN}")])
        assert response.action_id in ACTIONS


def test_learner_crash_is_unavailable_then_recovers(two_replicas: ServerProcess) -> None:
    with DecisionClient(two_replicas.replica_addresses, timeout=10.0, token=TOKEN) as client:
        before = client.get_policy(SYNTHETIC_POLICY)
        learners = two_replicas.learner_pids()
        assert len(learners) == len(load_config(two_replicas.config_path).policies)  # one per policy
        for pid in learners:
            os.kill(pid, signal.SIGKILL)

        outcomes: list[str] = []
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            decision = client.choose(SYNTHETIC_POLICY, {"user": {"segment": "s2"}}, ACTIONS)
            assert decision.action_id in ACTIONS
            try:
                outcomes.append(client.reward(decision.event_id, 1.0, policy=SYNTHETIC_POLICY))
            except UnavailableError:
                outcomes.append("unavailable")
            if outcomes[-1] == "accepted" and len(outcomes) > 1:
                break
            time.sleep(0.2)

        assert outcomes[-1] == "accepted", f"no recovery within 60 s: {outcomes[-5:]}"
        assert set(outcomes) <= {"accepted", "unavailable", "pending_decision"}
        after = client.get_policy(SYNTHETIC_POLICY)
        assert after.model_version > before.model_version
        assert two_replicas.learner_pids() != learners
