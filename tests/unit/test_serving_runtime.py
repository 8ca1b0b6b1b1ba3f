"""Server start-up settings, the loopback rewrite, the client's request building and the CLI."""

from __future__ import annotations

import pytest

from bandit.features import Action
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving._private.loopback import loopback_address
from serving.cli import build_parser, main
from serving.client import ChooseArgs, DecisionClient, to_choose_request
from serving.config import parse_config
from serving.server import ray_environment


def _server(**fields: object):
    return parse_config({"server": fields, "policies": [{"name": "p"}]}).server


def test_proxy_mode_sets_only_message_limit() -> None:
    env = ray_environment(_server(ingress="proxy", max_message_bytes=65536))
    assert env == {"RAY_SERVE_GRPC_MAX_MESSAGE_SIZE": "65536"}


def test_direct_mode_sets_port_range_and_drain() -> None:
    env = ray_environment(_server(ingress="direct", grpc_port=7000, drain_seconds=2.0))
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] == "7001"
    assert env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"] == "7100"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2.0"
    assert "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in env


def test_throughput_mode_adds_preset() -> None:
    env = ray_environment(_server(ingress="throughput_optimized", direct_ingress_port_range=[41000, 41010]))
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] == "41000"


@pytest.mark.parametrize(
    ("address", "expected"),
    [("[::]:9000", "127.0.0.1:9000"), ("[::]:0", "127.0.0.1:0"), ("127.0.0.1:5", "127.0.0.1:5"), ("10.1.2.3:7", "10.1.2.3:7")],
)
def test_loopback_address_rewrites_all_interfaces(address: str, expected: str) -> None:
    assert loopback_address(address) == expected


def test_client_builds_choose_request() -> None:
    args = ChooseArgs(
        policy="p",
        context={"device": {"type": "mobile", "wifi": True, "hour": 21}},
        actions=["a", Action("b", {"img": {"large": True}}), {"id": "c", "features": {"n": {"w": 0.5}}}],
        event_id="e-1",
        excluded_action_ids=["a"],
        consent=False,
    )
    message = to_choose_request(args)
    assert message.context["device"].features["type"].string_value == "mobile"
    assert message.context["device"].features["wifi"].bool_value is True
    assert message.context["device"].features["hour"].number_value == 21.0
    assert [a.id for a in message.actions] == ["a", "b", "c"]
    assert message.actions[1].features["img"].features["large"].bool_value is True
    assert message.actions[2].features["n"].features["w"].number_value == 0.5
    assert message.consent == pb.CONSENT_DENIED
    assert list(message.excluded_action_ids) == ["a"]


def test_client_rejects_unsupported_feature_type() -> None:
    with pytest.raises(TypeError, match=r"context.device.when must be a str, number or bool, got list"):
        to_choose_request(ChooseArgs("p", {"device": {"when": [1]}}, ["a"]))


def test_client_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        DecisionClient("127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="at least one host:port"):
        DecisionClient([])


def test_cli_registers_serve() -> None:
    args = build_parser().parse_args(["serve", "--port", "9100"])
    assert args.command == "serve"
    assert args.port == 9100
    assert callable(args.handler)


def test_cli_check_prints_config(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    status = main(["serve", "--check", "--port", "9300", "--data-dir", str(tmp_path)])
    output = capsys.readouterr().out
    assert status == 0
    assert '"grpc_port": 9300' in output
    assert str(tmp_path) in output
    assert "micro_adjustments" in output


def test_cli_rejects_invalid_config(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("policies:\n  - name: p\n    max_actions: -1\n")
    assert main(["serve", "--check", "--config", str(path)]) == 2
    assert "policies[0].max_actions" in caplog.text


def test_missing_token_variable_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from bandit.errors import ConfigurationError
    from serving._private.keys import load_auth_token

    config = parse_config({"server": {"auth_token_env": "MB_TEST_TOKEN"}, "policies": [{"name": "p"}]})
    monkeypatch.delenv("MB_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="MB_TEST_TOKEN, but that environment variable is unset"):
        load_auth_token(config)
    monkeypatch.setenv("MB_TEST_TOKEN", "abc")
    assert load_auth_token(config) == "abc"
    assert load_auth_token(parse_config({"policies": [{"name": "p"}]})) is None
