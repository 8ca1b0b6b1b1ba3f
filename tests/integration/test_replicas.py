"""Two decider replicas: Reward and Activate reach the policy's learner from either one.

This module starts its own server with two replicas (about 20 s) and stops
it when the module ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from serving.client import DecisionClient

from .conftest import SYNTHETIC_POLICY, ServerProcess, listening_addresses

pytestmark = pytest.mark.integration

ACTIONS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("microbandit-replicas"), decider_replicas=2)
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
    with DecisionClient(first, timeout=10.0) as left, DecisionClient(second, timeout=10.0) as right:
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
    with DecisionClient(first, timeout=10.0) as left, DecisionClient(second, timeout=10.0) as right:
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
