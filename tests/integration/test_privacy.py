"""Privacy on the real server: pseudonyms, consent, data minimization and erasure.

The tests use the session server's ``minimal`` policy, which accepts only
the namespaces ``user`` and ``look`` and drops the others. They run in file
order: the last test stops the server, erases one user with
``microbandit logs erase``, starts the server again and checks that the
model rebuilt from the log equals one trained without that user's records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bandit.eventlog import read_events, read_records
from bandit.events import JoinedEvent
from bandit.features import Action
from bandit.policy import Policy
from bandit.privacy import KEY_FILE_NAME, Pseudonymizer, load_pseudonym_key
from bandit.settings import PolicySettings
from serving.client import DecisionClient
from serving.config import load_config
from serving.learner import policy_data_dir

from .conftest import MINIMAL_POLICY, ServerProcess, free_port_block

pytestmark = pytest.mark.integration

ERASED_USER = "alice@example.org"
KEPT_USER = "bob@example.org"
DENIED_USER = "carol@example.org"
ACTIONS = [
    {"id": "bold", "features": {"look": {"style": "bold"}, "tracking": {"pixel": "p-91"}}},
    {"id": "calm", "features": {"look": {"style": "calm"}, "tracking": {"pixel": "p-92"}}},
]
ROUNDS_PER_USER = 30
UNDECLARED_REQUESTS = 5
LEARN_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[2]


def _context(device: str) -> dict[str, dict[str, object]]:
    return {"user": {"device": device}, "secret": {"national_id": "AB-123-456"}}


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> DecisionClient:
    with DecisionClient(server.address, timeout=10.0) as connected:
        connected.wait_ready()
        yield connected


def _wait_learned(client: DecisionClient, expected: int) -> int:
    deadline = time.monotonic() + LEARN_TIMEOUT
    learned = client.get_policy(MINIMAL_POLICY).examples_learned
    while learned < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        learned = client.get_policy(MINIMAL_POLICY).examples_learned
    return learned


def _logs_erase(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "serving.cli", "logs", "erase", *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def _model_from_log(
    events_dir: Path, settings: PolicySettings, context: dict[str, dict[str, object]], actions: list[Action]
) -> tuple[dict[str, float], int]:
    """Train a fresh policy on the log's learnable joined events, in log order; return its PMF and count."""
    policy = Policy(settings)
    try:
        for record in read_records(events_dir):
            if isinstance(record, JoinedEvent) and record.learnable:
                policy.learn(record)
        return policy.pmf(context, actions), policy.examples_learned
    finally:
        policy.close()


def test_undeclared_namespaces_dropped(client: DecisionClient) -> None:
    for index in range(UNDECLARED_REQUESTS):
        decision = client.choose(MINIMAL_POLICY, _context("mobile"), ACTIONS, event_id=f"undeclared-{index}")
        assert decision.action_id in {"bold", "calm"}


def test_consent_denied_is_decided_not_learned(client: DecisionClient) -> None:
    before = client.get_policy(MINIMAL_POLICY)
    decision = client.choose(MINIMAL_POLICY, _context("tablet"), ACTIONS, user_id=DENIED_USER, consent=False)
    assert decision.action_id in {"bold", "calm"}
    status = client.reward(decision.event_id, 1.0, policy=MINIMAL_POLICY)
    assert status in {"pending_decision", "orphan"}
    after = client.get_policy(MINIMAL_POLICY)
    assert after.decisions == before.decisions
    assert after.examples_learned == before.examples_learned


def test_users_decisions_are_learned(client: DecisionClient) -> None:
    start = client.get_policy(MINIMAL_POLICY).examples_learned
    for index in range(ROUNDS_PER_USER):
        for user, device in ((ERASED_USER, "mobile"), (KEPT_USER, "desktop")):
            decision = client.choose(MINIMAL_POLICY, _context(device), ACTIONS, user_id=user, consent=True)
            reward = 1.0 if (decision.action_id == "bold") == (user == ERASED_USER) else 0.0
            client.reward(decision.event_id, reward, policy=MINIMAL_POLICY, reward_id=f"r{index}")
    assert _wait_learned(client, start + 2 * ROUNDS_PER_USER) == start + 2 * ROUNDS_PER_USER


def test_erase_rejected_while_server_runs(server: ServerProcess) -> None:
    result = _logs_erase(str(server.data_dir), "--user", ERASED_USER)
    assert result.returncode == 3
    assert "in use by a running server" in result.stderr
    assert "stop the server first" in result.stderr


def test_second_server_on_same_data_dir_rejected(server: ServerProcess) -> None:
    grpc_port = free_port_block(4)
    command = [
        sys.executable,
        "-m",
        "serving.cli",
        "serve",
        "--config",
        str(server.config_path),
        "--port",
        str(grpc_port + 1),
        "--http-port",
        str(grpc_port),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "is in use by a running server" in result.stderr


def test_erasure_rebuilds_model_without_user(server: ServerProcess) -> None:
    assert server.stop() == 0
    events_dir = policy_data_dir(server.data_dir, MINIMAL_POLICY) / "events"
    key = load_pseudonym_key(data_dir=server.data_dir)
    erased = Pseudonymizer(key).pseudonymize(ERASED_USER)
    kept = Pseudonymizer(key).pseudonymize(KEPT_USER)
    denied = Pseudonymizer(key).pseudonymize(DENIED_USER)

    # Pseudonyms, never user ids; undeclared namespaces never logged.
    table = read_events(events_dir)
    users = table["user_id"].to_pylist()
    assert users.count(erased) >= ROUNDS_PER_USER
    assert users.count(kept) >= ROUNDS_PER_USER
    assert denied not in users
    text = json.dumps(table.to_pylist(), default=str)
    for secret in (ERASED_USER, KEPT_USER, DENIED_USER, "national_id", "AB-123-456", "tracking", "p-91"):
        assert secret not in text, f"{secret!r} reached the event log"

    # The key never reaches the server's logs; the drop is logged once, not per request.
    server_log = "".join(path.read_text(errors="replace") for path in server.workdir.glob("server-*.log"))
    assert "retention sweep of" in server_log
    assert (server.data_dir / KEY_FILE_NAME).read_text() not in server_log
    assert server_log.count("drops undeclared context namespace 'secret'") == 1
    assert server_log.count("namespace 'tracking'") == 1

    settings = load_config(server.config_path).policy(MINIMAL_POLICY).build()
    probe = {"user": {"device": "mobile"}}
    actions = [Action(a["id"], {"look": a["features"]["look"]}) for a in ACTIONS]
    with_erased_pmf, _ = _model_from_log(events_dir, settings, probe, actions)

    erased_events = {e for e, u in zip(table["event_id"].to_pylist(), users) if u == erased}
    expected_rows = sum(1 for event_id in table["event_id"].to_pylist() if event_id in erased_events)
    result = _logs_erase(str(server.data_dir), "--user", ERASED_USER)
    assert result.returncode == 0, result.stderr
    assert f"removed {expected_rows} rows in total" in result.stdout

    remaining = read_events(events_dir)
    assert erased not in remaining["user_id"].to_pylist()
    assert not erased_events & set(remaining["event_id"].to_pylist())
    assert remaining["user_id"].to_pylist().count(kept) >= ROUNDS_PER_USER

    # The model a fresh start rebuilds must equal one trained on what
    # remains, and differ from one that still has the erased user's records.
    expected_pmf, expected_learned = _model_from_log(events_dir, settings, probe, actions)
    assert expected_pmf["bold"] != pytest.approx(with_erased_pmf["bold"], abs=1e-3)

    server.start()
    with DecisionClient(server.address, timeout=10.0) as restarted:
        restarted.wait_ready()
        info = restarted.get_policy(MINIMAL_POLICY)
        assert info.examples_learned == expected_learned
        decision = restarted.choose(MINIMAL_POLICY, probe, ACTIONS, event_id="probe-after-erasure", consent=False)
    for action_id, probability in expected_pmf.items():
        assert decision.pmf[action_id] == pytest.approx(probability, abs=1e-9)
