"""Start-up errors of the server configuration: each names the field and the value.

Covers every VW option outside the allowlist (as VW's own option registry
lists them), unknown keys, negative and
zero times, unknown baseline actions, data-minimization settings, files the
configuration names (key, TLS) and a data directory that is not writable.
No Ray is started: these are the checks ``microbandit serve`` runs first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import vowpalwabbit

from bandit.errors import ConfigurationError, DataDirectoryInUseError
from bandit.maintenance import acquire_data_dir_lock
from bandit.vwargs import ALLOWED_OPTIONS
from serving.commands import run_serve
from serving.config import check_environment, parse_config
from serving.cli import build_parser


def _document(server: dict[str, object] | None = None, **policy: object) -> dict[str, object]:
    return {"server": server or {}, "policies": [{"name": "p", **policy}]}


# A VW workspace registers only the options of the reductions it sets up,
# so the registry is read from a default workspace and from one per
# contextual-bandit exploration.
_REGISTRY_ARGS = [
    "",
    "--cb_explore_adf",
    "--cb_explore_adf --squarecb",
    "--cb_explore_adf --bag 3",
    "--cb_explore_adf --cover 3",
    "--cb_explore_adf --regcb",
    "--cb_explore_adf --first 2",
    "--cb_explore_adf --softmax",
    "--cb_explore_adf --epsilon 0.1",
]


def _vw_option_names() -> list[str]:
    """Return the long options VW 9 registers, read from workspaces' own option registries."""
    names: set[str] = set()
    for args in _REGISTRY_ARGS:
        workspace = vowpalwabbit.Workspace(f"{args} --quiet")
        try:
            config = workspace.get_config()
        finally:
            workspace.finish()
        names |= {option.name for groups in config.values() for group in groups for option in group[1]}
    return sorted(names)


FORBIDDEN_VW_OPTIONS = [f"--{name}" for name in _vw_option_names() if f"--{name}" not in ALLOWED_OPTIONS]


def test_vw_registry_lists_file_options() -> None:
    assert "--data" in FORBIDDEN_VW_OPTIONS
    assert "--final_regressor" in FORBIDDEN_VW_OPTIONS
    assert "--initial_regressor" in FORBIDDEN_VW_OPTIONS
    assert "--cache_file" in FORBIDDEN_VW_OPTIONS
    assert "--readable_model" in FORBIDDEN_VW_OPTIONS
    assert "--invert_hash" in FORBIDDEN_VW_OPTIONS
    assert "--cb_explore_adf" in FORBIDDEN_VW_OPTIONS
    assert "--epsilon" in FORBIDDEN_VW_OPTIONS
    assert len(FORBIDDEN_VW_OPTIONS) > 100


@pytest.mark.parametrize("option", FORBIDDEN_VW_OPTIONS)
def test_vw_option_outside_allowlist_rejected(option: str) -> None:
    with pytest.raises(ConfigurationError, match=r"policies\[0\]\.vw_args") as raised:
        parse_config(_document(vw_args=f"{option} 1"))
    assert option in str(raised.value)


@pytest.mark.parametrize(
    "vw_args",
    ["-d /etc/passwd", "-f model.vw", "-i model.vw", "-c", "-p out.txt", "--l2=1e-6 -d x", ["--l2", "1e-6", "--data", "x"]],
)
def test_short_and_mixed_file_options_rejected(vw_args: object) -> None:
    with pytest.raises(ConfigurationError, match=r"policies\[0\]\.vw_args"):
        parse_config(_document(vw_args=vw_args))


ERROR_CASES: list[tuple[str, dict[str, object], str]] = [
    ("unknown top-level key", {**_document(), "polices": []}, "polices"),
    ("unknown server key", _document({"grpc_prot": 9000}), "server.grpc_prot"),
    ("unknown policy key", _document(rewrad_wait=5), "policies[0].rewrad_wait"),
    ("unknown join key", _document(join={"wait": 5}), "policies[0].join.wait"),
    ("unknown tls key", _document({"tls": {"cert_file": "c", "key_file": "k", "ca": "x"}}), "server.tls.ca"),
    ("negative reward wait", _document(join={"reward_wait_time_seconds": -1}), "policies[0].join.reward_wait_time_seconds"),
    ("negative orphan hold", _document(join={"orphan_hold_time_seconds": -0.5}), "policies[0].join.orphan_hold_time_seconds"),
    ("zero model update", _document(model_update_interval_seconds=0), "policies[0].model_update_interval_seconds"),
    ("negative model update", _document(model_update_interval_seconds=-2), "policies[0].model_update_interval_seconds"),
    ("negative checkpoint interval", _document({"checkpoint_interval_seconds": -1}), "server.checkpoint_interval_seconds"),
    ("negative request timeout", _document({"request_timeout_seconds": -3}), "server.request_timeout_seconds"),
    ("negative flush interval", _document({"decision_flush_interval_seconds": -0.1}), "server.decision_flush_interval_seconds"),
    ("negative drain", _document({"drain_seconds": -1}), "server.drain_seconds"),
    ("negative retention", _document({"retention_days": -7}), "server.retention_days"),
    ("zero retention", _document({"retention_days": 0}), "server.retention_days"),
    ("negative retention interval", _document({"retention_check_interval_seconds": -1}), "server.retention_check_interval_seconds"),
    ("NaN time", _document(join={"reward_wait_time_seconds": float("nan")}), "policies[0].join.reward_wait_time_seconds"),
    ("infinite reward range", _document(reward_range=[0, float("inf")]), "policies[0].reward_range"),
    ("text for a number", _document({"grpc_port": "nine thousand"}), "server.grpc_port"),
    ("lowercase token variable", _document({"auth_token_env": "my token"}), "server.auth_token_env"),
    ("empty key file", _document({"user_id_key_file": ""}), "server.user_id_key_file"),
    ("tls without key", _document({"tls": {"cert_file": "c"}}), "server.tls.key_file"),
    ("namespace with a space", _document(accepted_namespaces=["user id"]), "policies[0].accepted_namespaces"),
    ("namespace with a pipe", _document(accepted_namespaces=["a|b"]), "policies[0].accepted_namespaces"),
    ("empty accepted namespaces", _document(accepted_namespaces=[]), "policies[0].accepted_namespaces"),
    ("repeated namespace", _document(accepted_namespaces=["a", "a"]), "policies[0].accepted_namespaces"),
    ("unknown undeclared mode", _document(undeclared_namespaces="ignore"), "policies[0].undeclared_namespaces"),
]


@pytest.mark.parametrize(("name", "document", "field_path"), ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_invalid_setting_names_field(name: str, document: dict[str, object], field_path: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(field_path)):
        parse_config(document)


def test_negative_time_message_shows_value() -> None:
    with pytest.raises(ConfigurationError, match=r"greater than or equal to 0 \(got -1\)"):
        parse_config(_document(join={"reward_wait_time_seconds": -1}))


BASELINE = {
    "actions": ["a", "b"],
    "default": "a",
    "rules": [{"when": [{"feature": "device.type", "value": "mobile"}], "action": "b"}],
}


def test_unknown_baseline_rule_action_rejected() -> None:
    rules = [{"when": [{"feature": "device.type", "value": "mobile"}], "action": "zz"}]
    with pytest.raises(ConfigurationError, match=r"policies\[0\].*unknown action 'zz'"):
        parse_config(_document(baseline={**BASELINE, "rules": rules}))


def test_unknown_baseline_default_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"policies\[0\].*'nope'"):
        parse_config(_document(baseline={**BASELINE, "default": "nope"}))


def test_baseline_feature_outside_accepted_namespaces_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"baseline.rules\[0\] tests 'device.type'"):
        parse_config(_document(baseline=BASELINE, accepted_namespaces=["time"]))


def test_accepted_namespaces_reach_policy_settings() -> None:
    config = parse_config(_document(accepted_namespaces=["device", "cta"], undeclared_namespaces="drop"))
    settings = config.policies[0].build()
    assert settings.accepted_namespaces == ("device", "cta")
    assert settings.undeclared_namespaces == "drop"


def test_data_dir_under_a_file_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    config = parse_config(_document({"data_dir": str(blocker / "data")}))
    with pytest.raises(ConfigurationError, match=r"server.data_dir: .*not-a-directory/data is not a writable directory"):
        check_environment(config)


def test_data_dir_that_is_a_file_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("x")
    config = parse_config(_document({"data_dir": str(blocker)}))
    with pytest.raises(ConfigurationError, match="server.data_dir"):
        check_environment(config)


def test_missing_key_file_rejected(tmp_path: Path) -> None:
    config = parse_config(_document({"data_dir": str(tmp_path), "user_id_key_file": str(tmp_path / "absent.key")}))
    with pytest.raises(ConfigurationError, match=r"server.user_id_key_file: cannot read .*absent.key"):
        check_environment(config)


def test_tls_files_must_be_pem(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    tls = {"cert_file": str(tmp_path / "cert.pem"), "key_file": str(tmp_path / "key.pem")}
    config = parse_config(_document({"data_dir": str(tmp_path / "data"), "tls": tls}))
    with pytest.raises(ConfigurationError, match="server.tls.cert_file: .*contains no PEM certificate"):
        check_environment(config)


def test_missing_tls_key_rejected(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    tls = {"cert_file": str(tmp_path / "cert.pem"), "key_file": str(tmp_path / "missing.pem")}
    config = parse_config(_document({"data_dir": str(tmp_path / "data"), "tls": tls}))
    with pytest.raises(ConfigurationError, match="server.tls.key_file: cannot read"):
        check_environment(config)


def test_relative_tls_and_key_paths_resolve_against_file(tmp_path: Path) -> None:
    document = _document({"tls": {"cert_file": "c.pem", "key_file": "k.pem"}, "user_id_key_file": "u.key"})
    config = parse_config(document, base_dir=tmp_path)
    assert config.server.tls is not None
    assert config.server.tls.cert_file == str(tmp_path / "c.pem")
    assert config.server.tls.key_file == str(tmp_path / "k.pem")
    assert config.server.user_id_key_file == str(tmp_path / "u.key")


def test_data_dir_lock_is_exclusive(tmp_path: Path) -> None:
    import os

    held = acquire_data_dir_lock(tmp_path)
    try:
        with pytest.raises(DataDirectoryInUseError, match="in use by a running server"):
            acquire_data_dir_lock(tmp_path)
    finally:
        os.close(held)
    os.close(acquire_data_dir_lock(tmp_path))


def test_serve_check_reports_unwritable_data_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config_path = tmp_path / "server.yaml"
    config_path.write_text(f"server:\n  data_dir: {blocker / 'data'}\npolicies:\n  - name: p\n")
    args = build_parser().parse_args(["serve", "--config", str(config_path), "--check"])
    status = run_serve(args)
    assert status == 2
    assert "server.data_dir" in caplog.text


def test_serve_check_reports_unknown_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config_path = tmp_path / "server.yaml"
    config_path.write_text("server:\n  dashbaord: true\npolicies:\n  - name: p\n")
    args = build_parser().parse_args(["serve", "--config", str(config_path), "--check"])
    status = run_serve(args)
    assert status == 2
    assert "server.dashbaord: Extra inputs are not permitted" in caplog.text
