"""Configuration loading and validation of the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bandit.errors import ConfigurationError
from bandit.events import LearningMode
from bandit.exploration import SquareCB
from serving.config import (
    DEFAULT_GRPC_PORT,
    IngressMode,
    MicrobanditConfig,
    default_config_text,
    load_config,
    parse_config,
)


def _minimal(**policy: object) -> dict[str, object]:
    return {"policies": [{"name": "p1", **policy}]}


def test_embedded_example_builds_policy_settings() -> None:
    config = load_config()
    settings = config.policies[0].build()
    assert config.policies[0].name == "micro_adjustments"
    assert isinstance(settings.exploration, SquareCB)
    assert settings.baseline is not None
    assert len(settings.baseline.known_actions) == 12
    assert config.server.ingress is IngressMode.THROUGHPUT_OPTIMIZED


def test_example_baseline_rules_choose_marketer_actions() -> None:
    baseline = load_config().policies[0].build().baseline
    assert baseline is not None
    ids = list(baseline.known_actions)
    mobile_wifi = {"device": {"type": "mobile", "network": "wifi"}}
    mobile_cell = {"device": {"type": "mobile", "network": "cellular"}}
    desktop = {"device": {"type": "desktop", "network": "wifi"}}
    assert baseline.choose(mobile_wifi, ids) == "cta_buy_now|img_large|layout_simplified"
    assert baseline.choose(mobile_cell, ids) == "cta_buy_now|img_standard|layout_simplified"
    assert baseline.choose(desktop, ids) == "cta_buy_now|img_standard|layout_full"


def test_example_file_is_package_data() -> None:
    text = default_config_text()
    assert "micro_adjustments" in text
    assert yaml.safe_load(text)["policies"][0]["name"] == "micro_adjustments"


def test_defaults_fill_server_section() -> None:
    config = parse_config(_minimal())
    assert config.server.grpc_port == DEFAULT_GRPC_PORT
    assert config.server.replica_port_range == (DEFAULT_GRPC_PORT + 1, DEFAULT_GRPC_PORT + 100)
    assert config.policies[0].build().learning_mode is LearningMode.ONLINE


@pytest.mark.parametrize(
    ("document", "field_path"),
    [
        (_minimal(name="bad/name"), "policies[0].name"),
        (_minimal(vw_args="-d /etc/passwd"), "policies[0].vw_args"),
        (_minimal(exploration={"type": "nope"}), "policies[0].exploration"),
        (_minimal(reward_range=[1.0, 0.0]), "policies[0].reward_range"),
        (_minimal(max_actions=0), "policies[0].max_actions"),
        (_minimal(learning_mode="sometimes"), "policies[0].learning_mode"),
        (_minimal(join={"reward_wait_time_seconds": -1}), "policies[0].join.reward_wait_time_seconds"),
        (_minimal(join={"aggregation": "median"}), "policies[0].join.aggregation"),
        (_minimal(model_update_interval_seconds=0), "policies[0].model_update_interval_seconds"),
        (_minimal(colour="blue"), "policies[0].colour"),
        ({"server": {"grpc_port": 70000}, **_minimal()}, "server.grpc_port"),
        ({"server": {"ingress": "carrier_pigeon"}, **_minimal()}, "server.ingress"),
        ({"server": {"decider_replicas": 0}, **_minimal()}, "server.decider_replicas"),
        ({"server": {"max_message_bytes": 10}, **_minimal()}, "server.max_message_bytes"),
        ({"policies": []}, "policies"),
    ],
)
def test_invalid_field_is_named(document: dict[str, object], field_path: str) -> None:
    with pytest.raises(ConfigurationError, match=field_path.replace("[", r"\[").replace("]", r"\]")):
        parse_config(document)


def test_duplicate_policy_names_rejected() -> None:
    with pytest.raises(ConfigurationError, match="'p1' appears more than once"):
        parse_config({"policies": [{"name": "p1"}, {"name": "p1"}]})


def test_default_reward_outside_range_rejected() -> None:
    with pytest.raises(ConfigurationError, match="default_reward"):
        parse_config(_minimal(reward_range=[0.0, 1.0], join={"default_reward": 2.0}))


def test_baseline_rule_with_unknown_action_rejected() -> None:
    baseline = {"actions": ["a", "b"], "default": "a", "rules": [{"when": [{"feature": "d.t", "value": "x"}], "action": "zz"}]}
    with pytest.raises(ConfigurationError, match="unknown action 'zz'"):
        parse_config(_minimal(baseline=baseline))


def test_port_range_must_not_contain_grpc_port() -> None:
    with pytest.raises(ConfigurationError, match="must not contain grpc_port"):
        parse_config({"server": {"grpc_port": 9000, "direct_ingress_port_range": [8990, 9010]}, **_minimal()})


def test_relative_data_dir_resolves_against_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "server.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"server": {"data_dir": "state"}, **_minimal()}))
    config = load_config(path)
    assert config.data_path() == (path.parent / "state").resolve()


def test_missing_file_and_bad_yaml_raise(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read configuration file"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("policies: [unclosed")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(broken)


def test_config_round_trips_through_json() -> None:
    config = load_config()
    again = MicrobanditConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.policies[0].build() == config.policies[0].build()
