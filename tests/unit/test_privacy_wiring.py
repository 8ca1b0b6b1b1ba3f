"""Privacy wiring of the server without Ray: keys, minimization, retention sweeps, the erase command's checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bandit.errors import ConfigurationError
from bandit.eventlog import read_events
from bandit.features import Action
from bandit.loop import DecisionLoop
from bandit.maintenance import acquire_data_dir_lock
from bandit.privacy import KEY_FILE_NAME, Pseudonymizer, load_pseudonym_key
from bandit.settings import PolicySettings
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving._private.grpc_service import UndecodableRequest
from serving._private.keys import load_user_id_key
from serving._private.retention import RetentionSweeper
from serving.cli import main
from serving.config import MicrobanditConfig, parse_config
from serving.decider import DeciderCore, pseudonymize

KEY = b"privacy-unit-test-key-0123"
DAY = 86_400.0
START = 1_800_000_000.0


def _config(tmp_path: Path, **policy: object) -> MicrobanditConfig:
    return parse_config(
        {
            "server": {"data_dir": str(tmp_path / "data")},
            "policies": [{"name": "p", **policy}],
        }
    )


def _request(context: dict[str, dict[str, str]], user_id: str = "") -> pb.ChooseRequest:
    return pb.ChooseRequest(
        policy="p",
        context={
            ns: pb.Namespace(features={k: pb.FeatureValue(string_value=v) for k, v in features.items()})
            for ns, features in context.items()
        },
        actions=[pb.Action(id="a"), pb.Action(id="b")],
        user_id=user_id,
    )


def test_server_and_cli_share_pseudonyms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MICROBANDIT_USER_ID_KEY", raising=False)
    config = _config(tmp_path)
    server_key = load_user_id_key(config)
    key_path = tmp_path / "data" / KEY_FILE_NAME
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert load_user_id_key(config) == server_key
    cli_key = load_pseudonym_key(data_dir=tmp_path / "data")
    assert pseudonymize("alice", server_key) == Pseudonymizer(cli_key).pseudonymize("alice")


def test_key_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "configured.key"
    key_file.write_text("from-a-key-file-0123456789\n")
    monkeypatch.setenv("MICROBANDIT_USER_ID_KEY", "from-the-environment-0123")
    assert load_pseudonym_key(key_file, data_dir=tmp_path) == b"from-a-key-file-0123456789"
    assert load_pseudonym_key(None, data_dir=tmp_path) == b"from-the-environment-0123"
    monkeypatch.delenv("MICROBANDIT_USER_ID_KEY")
    with pytest.raises(ValueError, match="no pseudonymization key"):
        load_pseudonym_key(None, data_dir=tmp_path)


def test_short_environment_key_names_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROBANDIT_USER_ID_KEY", "short")
    with pytest.raises(ConfigurationError, match="server.user_id_key_env: .*shorter than 16 bytes") as raised:
        load_user_id_key(_config(tmp_path))
    assert "short" not in str(raised.value).split("bytes")[-1]


def test_user_id_is_never_a_feature(tmp_path: Path) -> None:
    core = DeciderCore(_config(tmp_path), KEY, lambda: START)
    core.choose(_request({"device": {"type": "mobile"}}, user_id="alice@example.org"))
    record = core.take_buffer("p")[0]
    assert record.user_id == pseudonymize("alice@example.org", KEY)
    assert "alice@example.org" not in repr(record.context)
    assert "alice@example.org" not in repr(record.actions)
    core.close()


def test_undeclared_namespace_rejected(tmp_path: Path) -> None:
    core = DeciderCore(_config(tmp_path, accepted_namespaces=["device"]), KEY, lambda: START)
    with pytest.raises(ValueError, match="namespace 'secret' is not accepted by policy 'p'"):
        core.choose(_request({"device": {"type": "mobile"}, "secret": {"id": "x"}}))
    assert core.take_buffer("p") == []
    core.close()


def test_dropped_namespace_logged_once_across_models(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path, accepted_namespaces=["device"], undeclared_namespaces="drop")
    caplog.set_level(logging.INFO)
    core = DeciderCore(config, KEY, lambda: START)
    assert "accepts only the namespaces ['device'] and drops others" in caplog.text
    for _ in range(3):
        core.choose(_request({"device": {"type": "mobile"}, "secret": {"id": "x"}}))
    checkpoint = core.slots["p"].policy.to_checkpoint()
    core.install_model("p", checkpoint)
    for _ in range(3):
        core.choose(_request({"device": {"type": "mobile"}, "secret": {"id": "x"}}))
    records = core.take_buffer("p")
    assert all("secret" not in record.context for record in records)
    assert caplog.text.count("drops undeclared context namespace 'secret'") == 1
    core.close()


def test_undecodable_request_is_invalid_argument(tmp_path: Path) -> None:
    core = DeciderCore(_config(tmp_path), KEY, lambda: START)
    with pytest.raises(ValueError, match="not a valid microbandit.v1.ChooseRequest message: bad wire"):
        core.choose(UndecodableRequest("microbandit.v1.ChooseRequest", "bad wire", 7))  # type: ignore[arg-type]
    core.close()


def _log_decisions(policy_dir: Path, timestamps: list[float]) -> None:
    """Write one segment per timestamp through the real decision loop."""
    clock = [timestamps[0]]
    loop = DecisionLoop(PolicySettings("p"), policy_dir, clock=lambda: clock[0])
    for timestamp in timestamps:
        clock[0] = timestamp
        loop.choose({"user": {"device": "mobile"}}, [Action("a", {}), Action("b", {})])
        loop.flush()
    loop.close()


def test_retention_sweep_deletes_old_segments(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    policy_dir = data_dir / "policies" / "p"
    _log_decisions(policy_dir, [START, START + 1, START + 20 * DAY])
    before = read_events(policy_dir / "events").num_rows
    now = [START + 40 * DAY]
    sweeper = RetentionSweeper(data_dir, retention_days=30, interval_seconds=3600, clock=lambda: now[0])
    removed = sweeper.sweep()
    after = read_events(policy_dir / "events")
    assert removed > 0
    assert after.num_rows == before - removed
    assert min(after["timestamp"].to_pylist()).timestamp() >= START + 20 * DAY
    now[0] = START + 51 * DAY
    assert sweeper.sweep() == after.num_rows
    assert read_events(policy_dir / "events").num_rows == 0


def test_retention_sweeper_rejects_zero_days(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_days must be > 0, got 0"):
        RetentionSweeper(tmp_path, retention_days=0, interval_seconds=1, clock=lambda: START)


def test_erase_command_rejects_running_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    _log_decisions(data_dir / "policies" / "p", [START])
    held = acquire_data_dir_lock(data_dir)
    try:
        status = main(["logs", "erase", str(data_dir / "policies" / "p"), "--pseudonym", "0" * 32])
    finally:
        os.close(held)
    assert status == 3
    assert "in use by a running server" in capsys.readouterr().err


def test_erase_command_uses_data_dir_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MICROBANDIT_USER_ID_KEY", raising=False)
    data_dir = tmp_path / "data"
    key = load_pseudonym_key(data_dir=data_dir, create=True)
    policy_dir = data_dir / "policies" / "p"
    settings = PolicySettings("p")
    loop = DecisionLoop(settings, policy_dir, clock=lambda: START)
    for user in ("alice", "bob", "alice"):
        loop.choose({"user": {"device": "mobile"}}, [Action("a", {}), Action("b", {})], user_id=Pseudonymizer(key).pseudonymize(user))
    loop.close()

    status = main(["logs", "erase", str(data_dir), "--user", "alice"])
    output = capsys.readouterr().out
    assert status == 0
    assert "removed 2 rows in total" in output
    users = read_events(policy_dir / "events")["user_id"].to_pylist()
    assert users == [Pseudonymizer(key).pseudonymize("bob")]
