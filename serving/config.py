"""Configuration of the decision server: one YAML file of server settings and policies.

The file is validated at start into frozen pydantic models; every error names
the field (``policies[1].join.reward_wait_time_seconds``) and the value. Each
policy section builds a :class:`bandit.settings.PolicySettings`. Defaults are
the ``DEFAULT_*`` constants of this module and of :mod:`bandit.settings`.

Example (the embedded default, ``serving/examples/micro_adjustments.yaml``)::

    server:
      grpc_port: 9000
      data_dir: ./microbandit-data
    policies:
      - name: micro_adjustments
        exploration: {type: squarecb}
        reward_wait_time_seconds: 600
"""

from __future__ import annotations

import json
import math
import os
import re
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bandit.baseline import OPERATORS, BaselineRules
from bandit.errors import ConfigurationError
from bandit.events import LearningMode
from bandit.exploration import EXPLORATIONS, exploration_from_dict
from bandit.settings import (
    DEFAULT_BIT_PRECISION,
    DEFAULT_MAX_ACTIONS,
    DEFAULT_MAX_PENDING,
    DEFAULT_ORPHAN_HOLD_TIME,
    DEFAULT_REWARD,
    DEFAULT_REWARD_WAIT_TIME,
    Aggregation,
    JoinSettings,
    PolicySettings,
    validate_policy_name,
)
from bandit.vwargs import validate_vw_args

__all__ = [
    "IngressMode",
    "ServerConfig",
    "TLSConfig",
    "check_environment",
    "DEFAULT_RETENTION_CHECK_INTERVAL",
    "PolicyConfig",
    "BaselineConfig",
    "ConditionConfig",
    "RuleConfig",
    "MicrobanditConfig",
    "load_config",
    "parse_config",
    "default_config_text",
    "DEFAULT_CONFIG_RESOURCE",
    "DEFAULT_GRPC_PORT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_INGRESS",
    "DEFAULT_DECIDER_REPLICAS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MODEL_UPDATE_INTERVAL",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_DECISION_BUFFER_SIZE",
    "DEFAULT_DECISION_FLUSH_INTERVAL",
    "DEFAULT_LOG_SYNC_INTERVAL",
    "DEFAULT_EVENT_ID_MEMORY",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_ONGOING_REQUESTS",
    "DEFAULT_MAX_QUEUED_REQUESTS",
    "DEFAULT_MAX_QUEUE_DELAY",
    "DEFAULT_DRAIN_SECONDS",
    "DEFAULT_DECIDER_CPUS",
    "DEFAULT_LEARNER_CPUS",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_APPLICATION_NAME",
]

DEFAULT_CONFIG_RESOURCE = "micro_adjustments.yaml"
"""File name of the embedded example configuration in ``serving/examples``."""
DEFAULT_APPLICATION_NAME = "microbandit"
"""Name of the Ray Serve application."""
DEFAULT_GRPC_PORT = 9000
"""TCP port of the gRPC ingress on 127.0.0.1."""
DEFAULT_DATA_DIR = "./microbandit-data"
"""Directory of event logs and checkpoints, one subdirectory per policy."""
DEFAULT_INGRESS = "throughput_optimized"
"""Ingress mode. It was the fastest mode in ``benchmarks/bench_server.py`` (docs/benchmarks.md)."""
DEFAULT_DECIDER_REPLICAS = 1
"""Number of decider replicas. Under full load each one uses about one core."""
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest accepted request message (4 MiB, gRPC's own default)."""
DEFAULT_MODEL_UPDATE_INTERVAL = 2.0
"""Seconds between publications of a policy's model to the deciders."""
DEFAULT_CHECKPOINT_INTERVAL = 30.0
"""Seconds between checkpoints of each learner (one more is written at shutdown)."""
DEFAULT_DECISION_BUFFER_SIZE = 10_000
"""Maximum number of decision records a decider buffers for the learners before it rejects decisions."""
DEFAULT_DECISION_FLUSH_INTERVAL = 0.05
"""Seconds between pushes of buffered decision records from a decider to the learners."""
DEFAULT_LOG_SYNC_INTERVAL = 0.5
"""Seconds a learner keeps records in memory before writing them to the event log.

With the decision flush interval and the learner's 0.1 s timer, a crash loses
decisions of at most the last 0.65 s by default.
"""
DEFAULT_EVENT_ID_MEMORY = 100_000
"""Recent decisions each decider remembers per policy to replay repeated event ids."""
DEFAULT_MAX_BATCH_SIZE = 1_000
"""Largest number of requests in one ChooseBatch call."""
DEFAULT_MAX_ONGOING_REQUESTS = 64
"""Concurrent requests one decider replica accepts before Serve queues or rejects."""
DEFAULT_MAX_QUEUED_REQUESTS = 128
"""Requests that wait for a decider replica once it runs max_ongoing_requests.

At about 2.5 ms per Choose this bounds the queueing delay near 0.3 s.
"""
DEFAULT_MAX_QUEUE_DELAY = 0.25
"""Seconds a decider replica's event loop may run late before it sheds Choose and ChooseBatch calls."""
DEFAULT_DRAIN_SECONDS = 1.0
"""Seconds a stopping replica keeps accepting requests (Ray Serve's own default is 30)."""
DEFAULT_DECIDER_CPUS = 0.5
"""Logical CPUs Ray reserves for each decider replica."""
DEFAULT_LEARNER_CPUS = 0.25
"""Logical CPUs Ray reserves for each learner actor."""
DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds after which the ingress cancels a request with DEADLINE_EXCEEDED."""

DEFAULT_RETENTION_CHECK_INTERVAL = 3600.0
"""Seconds between two runs of the retention sweep of a server with ``retention_days``."""

_FORBID = ConfigDict(extra="forbid", frozen=True)
_NAMESPACE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class IngressMode(str, Enum):
    """How gRPC requests reach the decider replicas."""

    PROXY = "proxy"
    """Ray Serve's gRPC proxy on ``grpc_port`` forwards each call to a replica."""
    DIRECT = "direct"
    """Each replica also serves gRPC on its own port (Ray Serve direct ingress)."""
    THROUGHPUT_OPTIMIZED = "throughput_optimized"
    """Direct ingress plus Ray Serve's throughput-optimized preset."""


class TLSConfig(BaseModel):
    """Certificate and private key of the TLS gRPC ports."""

    model_config = _FORBID

    cert_file: str = Field(min_length=1, description="PEM file with the server certificate chain.")
    key_file: str = Field(min_length=1, description="PEM file with the unencrypted private key of the certificate.")


class ServerConfig(BaseModel):
    """Settings of the server process and the Ray Serve application."""

    model_config = _FORBID

    grpc_port: int = Field(DEFAULT_GRPC_PORT, ge=1, le=65535, description="TCP port of the gRPC ingress (proxy).")
    data_dir: str = Field(
        DEFAULT_DATA_DIR,
        min_length=1,
        description="Directory of event logs and checkpoints; relative paths are resolved against the config file.",
    )
    decider_replicas: int = Field(DEFAULT_DECIDER_REPLICAS, ge=1, le=64, description="Number of decider replicas.")
    ingress: IngressMode = Field(
        DEFAULT_INGRESS, description="How gRPC requests reach the deciders: proxy, direct or throughput_optimized."
    )
    direct_ingress_port_range: tuple[int, int] | None = Field(
        None,
        description=(
            "First and last TCP port for replicas' own gRPC servers in direct ingress; "
            "default: grpc_port + 1 to grpc_port + 100."
        ),
    )
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        le=2**31 - 1,
        description="Largest accepted request message in bytes; larger ones get RESOURCE_EXHAUSTED.",
    )
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, le=100_000, description="Maximum number of requests in one ChooseBatch.")
    request_timeout_seconds: float = Field(
        DEFAULT_REQUEST_TIMEOUT, gt=0, description="Seconds before the ingress cancels a request."
    )
    checkpoint_interval_seconds: float = Field(
        DEFAULT_CHECKPOINT_INTERVAL, gt=0, description="Seconds between learner checkpoints."
    )
    decision_buffer_size: int = Field(
        DEFAULT_DECISION_BUFFER_SIZE,
        ge=1,
        description="Decision records a decider buffers for the learners; when full, Choose gets UNAVAILABLE.",
    )
    decision_flush_interval_seconds: float = Field(
        DEFAULT_DECISION_FLUSH_INTERVAL, gt=0, le=10, description="Seconds between decision pushes to the learners."
    )
    log_sync_interval_seconds: float = Field(
        DEFAULT_LOG_SYNC_INTERVAL,
        gt=0,
        le=60,
        description=(
            "Seconds a learner may keep decision records in memory before it writes them to the event log; "
            "Reward and Activate are written before they are answered."
        ),
    )
    event_id_memory: int = Field(
        DEFAULT_EVENT_ID_MEMORY, ge=0, description="Recent decisions remembered per policy to replay repeated ids."
    )
    drain_seconds: float = Field(
        DEFAULT_DRAIN_SECONDS,
        ge=0,
        le=600,
        description="Seconds a stopping direct-ingress replica keeps serving, for load balancers to deregister it.",
    )
    max_ongoing_requests: int = Field(
        DEFAULT_MAX_ONGOING_REQUESTS, ge=1, description="Concurrent requests per decider replica."
    )
    max_queue_delay_seconds: float = Field(
        DEFAULT_MAX_QUEUE_DELAY,
        gt=0,
        le=60,
        description=(
            "When a decider replica's event loop runs this many seconds late, its Choose and ChooseBatch "
            "return UNAVAILABLE at once until it catches up."
        ),
    )
    max_queued_requests: int = Field(
        DEFAULT_MAX_QUEUED_REQUESTS,
        ge=1,
        description=(
            "Requests that wait for a decider replica beyond max_ongoing_requests; "
            "further requests get RESOURCE_EXHAUSTED at once instead of waiting."
        ),
    )
    decider_cpus: float = Field(DEFAULT_DECIDER_CPUS, gt=0, le=64, description="Logical CPUs per decider replica.")
    learner_cpus: float = Field(DEFAULT_LEARNER_CPUS, gt=0, le=64, description="Logical CPUs per learner actor.")
    ray_cpus: int | None = Field(
        None, ge=1, description="Logical CPUs of the local Ray started by `microbandit serve`; default: all cores."
    )
    dashboard: bool = Field(False, description="Start the Ray dashboard (on 127.0.0.1) with the local Ray.")
    access_log: bool = Field(False, description="Write one Ray Serve access-log line per request.")
    auth_token_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description=(
            "Environment variable with a shared secret; when set, every call must send the gRPC metadata "
            "'authorization: Bearer <secret>' or gets UNAUTHENTICATED."
        ),
    )
    user_id_key_env: str = Field(
        "MICROBANDIT_USER_ID_KEY",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable with the secret key that pseudonymizes user ids (HMAC-SHA256).",
    )
    user_id_key_file: str | None = Field(
        None,
        min_length=1,
        description=(
            "File with the secret key that pseudonymizes user ids; takes precedence over user_id_key_env. "
            "Default: the environment variable, else a random key created once as DATA_DIR/user_id.key."
        ),
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        le=36_500,
        description="Event-log segments whose newest record is older than this many days are deleted; none keeps all.",
    )
    retention_check_interval_seconds: float = Field(
        DEFAULT_RETENTION_CHECK_INTERVAL, gt=0, description="Seconds between runs of the retention sweep."
    )
    tls: TLSConfig | None = Field(
        None, description="Serve every gRPC port (proxy and replicas) over TLS with this certificate and key."
    )

    @model_validator(mode="after")
    def _check_port_range(self) -> ServerConfig:
        if self.direct_ingress_port_range is not None:
            first, last = self.direct_ingress_port_range
            if not 1 <= first <= last <= 65535:
                raise ValueError(f"direct_ingress_port_range must be 1 <= first <= last <= 65535, got {[first, last]}")
            if first <= self.grpc_port <= last:
                raise ValueError(f"direct_ingress_port_range {[first, last]} must not contain grpc_port {self.grpc_port}")
        return self

    @property
    def replica_port_range(self) -> tuple[int, int]:
        """Ports of the replicas' own gRPC servers in direct ingress."""
        if self.direct_ingress_port_range is not None:
            return self.direct_ingress_port_range
        return self.grpc_port + 1, min(self.grpc_port + 100, 65535)


FeatureLiteral = str | float | bool


class ConditionConfig(BaseModel):
    """One test of a context feature in a baseline rule."""

    model_config = _FORBID

    feature: str = Field(description="Feature written namespace.name, for example device.type.")
    op: Literal[OPERATORS] = Field("eq", description="Comparison: " + ", ".join(OPERATORS) + ".")  # type: ignore[valid-type]
    value: FeatureLiteral | list[FeatureLiteral] | None = Field(
        None, description="Right-hand side: a list for in/not_in, a number for lt/le/gt/ge, none for present/absent."
    )


class RuleConfig(BaseModel):
    """A baseline rule: the action applies when every condition holds."""

    model_config = _FORBID

    when: list[ConditionConfig] = Field(description="Conditions, all of which must hold.")
    action: str = Field(min_length=1, description="Action id to return.")


class BaselineConfig(BaseModel):
    """Declarative baseline rules of a policy."""

    model_config = _FORBID

    actions: list[str] = Field(min_length=1, description="Every action id the policy may be offered.")
    rules: list[RuleConfig] = Field(default_factory=list, description="Rules, tried in order.")
    default: str = Field(min_length=1, description="Action id when no rule applies.")

    def build(self) -> BaselineRules:
        """Return the :class:`bandit.baseline.BaselineRules` of this section."""
        return BaselineRules.from_dict(
            {
                "rules": [r.model_dump() for r in self.rules],
                "default": self.default,
                "known_actions": self.actions,
            }
        )


class JoinConfig(BaseModel):
    """Reward-join settings of a policy."""

    model_config = _FORBID

    reward_wait_time_seconds: float = Field(
        DEFAULT_REWARD_WAIT_TIME, ge=0, description="Seconds from a decision until its reward window closes."
    )
    default_reward: float = Field(DEFAULT_REWARD, description="Reward learned when none arrives in the window.")
    aggregation: Aggregation = Field(Aggregation.EARLIEST, description="How several rewards for one event combine.")
    orphan_hold_time_seconds: float = Field(
        DEFAULT_ORPHAN_HOLD_TIME, ge=0, description="Seconds a reward for an unseen decision waits for it."
    )
    max_pending: int = Field(
        DEFAULT_MAX_PENDING, ge=1, description="Decisions waiting for their window; beyond it Choose gets UNAVAILABLE."
    )

    def build(self) -> JoinSettings:
        """Return the :class:`bandit.settings.JoinSettings` of this section."""
        return JoinSettings(
            reward_wait_time=self.reward_wait_time_seconds,
            default_reward=self.default_reward,
            aggregation=self.aggregation,
            orphan_hold_time=self.orphan_hold_time_seconds,
            max_pending=self.max_pending,
        )


class PolicyConfig(BaseModel):
    """One policy: its model, exploration, reward join, learning mode and baseline."""

    model_config = _FORBID

    name: str = Field(description="Policy name: 1 to 64 characters from [A-Za-z0-9_.-], starting alphanumeric.")
    exploration: dict[str, Any] = Field(
        default_factory=lambda: {"type": "epsilon_greedy", "epsilon": 0.05},
        description="Exploration strategy: {type: " + "|".join(sorted(EXPLORATIONS)) + ", ...hyperparameters}.",
    )
    interactions: list[list[str]] = Field(
        default_factory=lambda: [["context.*", "action.*"]],
        description="Feature crosses over namespaces: context.NAME, context.*, action.NAME, action.*.",
    )
    vw_args: str | list[str] = Field(
        default_factory=list, description="Extra VW learning hyperparameters (allowlisted), for example '--l2 1e-6'."
    )
    bit_precision: int = Field(DEFAULT_BIT_PRECISION, ge=1, le=30, description="VW weight-table size in bits.")
    seed: int = Field(0, ge=0, description="Seed of VW and of the per-decision sampling.")
    reward_range: tuple[float, float] = Field((0.0, 1.0), description="[min, max] of accepted reward values.")
    max_actions: int = Field(DEFAULT_MAX_ACTIONS, ge=1, le=10_000, description="Maximum number of candidate actions per decision.")
    learning_mode: LearningMode = Field(LearningMode.ONLINE, description="online, apprentice or logging_only.")
    baseline: BaselineConfig | None = Field(None, description="Baseline rules; absent means the first eligible action.")
    join: JoinConfig = Field(default_factory=JoinConfig, description="Reward wait time, default reward, aggregation.")
    model_update_interval_seconds: float = Field(
        DEFAULT_MODEL_UPDATE_INTERVAL, gt=0, le=3600, description="Seconds between model publications to the deciders."
    )
    require_consent: bool = Field(
        False, description="Treat requests with consent unspecified as denied (decided, but neither logged nor learned)."
    )
    accepted_namespaces: list[str] | None = Field(
        None,
        description=(
            "Data minimization: the context and action feature namespaces this policy accepts; none accepts every "
            "namespace."
        ),
    )
    undeclared_namespaces: Literal["reject", "drop"] = Field(
        "reject",
        description=(
            "A namespace outside accepted_namespaces: 'reject' the request with INVALID_ARGUMENT, or 'drop' the "
            "namespace before scoring and logging."
        ),
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_policy_name(value)

    @field_validator("accepted_namespaces")
    @classmethod
    def _check_accepted_namespaces(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("must list at least one namespace, or be omitted to accept every namespace")
        for name in value:
            if not _NAMESPACE_NAME.fullmatch(name):
                raise ValueError(f"namespace {name[:70]!r} is not 1 to 64 characters from [A-Za-z0-9_]")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a namespace more than once: {value}")
        return value

    @field_validator("exploration")
    @classmethod
    def _check_exploration(cls, value: dict[str, Any]) -> dict[str, Any]:
        exploration_from_dict(dict(value))
        return value

    @field_validator("vw_args")
    @classmethod
    def _check_vw_args(cls, value: str | list[str]) -> str | list[str]:
        validate_vw_args(value)
        return value

    @field_validator("reward_range")
    @classmethod
    def _check_reward_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"must be finite [min, max] with min < max, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> PolicyConfig:
        low, high = self.reward_range
        if not low <= self.join.default_reward <= high:
            raise ValueError(f"join.default_reward {self.join.default_reward} is outside reward_range {list(self.reward_range)}")
        if self.baseline is not None:
            self.baseline.build()
            if self.accepted_namespaces is not None:
                for index, rule in enumerate(self.baseline.rules):
                    for condition in rule.when:
                        namespace = condition.feature.split(".", 1)[0]
                        if namespace not in self.accepted_namespaces:
                            raise ValueError(
                                f"baseline.rules[{index}] tests {condition.feature!r}, but its namespace "
                                f"{namespace!r} is not in accepted_namespaces {self.accepted_namespaces}"
                            )
        self.build()
        return self

    def build(self) -> PolicySettings:
        """Return the :class:`bandit.settings.PolicySettings` of this section."""
        return PolicySettings(
            name=self.name,
            exploration=exploration_from_dict(dict(self.exploration)),
            interactions=tuple(tuple(group) for group in self.interactions),
            vw_args=validate_vw_args(self.vw_args),
            bit_precision=self.bit_precision,
            seed=self.seed,
            reward_range=self.reward_range,
            max_actions=self.max_actions,
            learning_mode=self.learning_mode,
            baseline=self.baseline.build() if self.baseline is not None else None,
            join=self.join.build(),
            accepted_namespaces=tuple(self.accepted_namespaces) if self.accepted_namespaces is not None else None,
            undeclared_namespaces=self.undeclared_namespaces,
        )

    def settings_json(self) -> str:
        """Return the section as canonical JSON (the GetPolicy ``settings_json`` field)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class MicrobanditConfig(BaseModel):
    """The whole configuration file."""

    model_config = _FORBID

    server: ServerConfig = Field(default_factory=ServerConfig, description="Server and Ray Serve settings.")
    policies: Annotated[list[PolicyConfig], Field(min_length=1, max_length=256)] = Field(
        description="Policies served, each with a unique name."
    )

    @field_validator("policies")
    @classmethod
    def _check_unique(cls, value: list[PolicyConfig]) -> list[PolicyConfig]:
        seen: set[str] = set()
        for policy in value:
            if policy.name in seen:
                raise ValueError(f"policy name {policy.name!r} appears more than once")
            seen.add(policy.name)
        return value

    def policy(self, name: str) -> PolicyConfig:
        """Return the policy section called ``name``; raise ``KeyError`` when absent."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def data_path(self) -> Path:
        """Return the absolute data directory."""
        return Path(self.server.data_dir).expanduser().resolve()


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_config(data: object, base_dir: str | os.PathLike[str] | None = None) -> MicrobanditConfig:
    """Validate a parsed YAML document into a :class:`MicrobanditConfig`.

    Parameters
    ----------
    data : object
        The document, normally a mapping.
    base_dir : path, optional
        Directory against which a relative ``server.data_dir`` is resolved.

    Raises
    ------
    ConfigurationError
        Listing each invalid field by its path, with the value and the rule.
    """
    if not isinstance(data, dict):
        raise ConfigurationError(f"configuration must be a mapping with 'server' and 'policies', got {type(data).__name__}")
    try:
        config = MicrobanditConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = _field_path(tuple(item["loc"])) or "(top level)"
            value = item.get("input")
            shown = repr(value) if not isinstance(value, dict) else "{...}"
            problems.append(f"{where}: {item['msg']} (got {shown[:80]})")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    if base_dir is not None:
        config = _resolve_paths(config, Path(base_dir))
    return config


def _resolve(path: str, base_dir: Path) -> str:
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())


def _resolve_paths(config: MicrobanditConfig, base_dir: Path) -> MicrobanditConfig:
    """Resolve the relative paths of the server section against ``base_dir``."""
    server = config.server
    update: dict[str, Any] = {"data_dir": _resolve(server.data_dir, base_dir)}
    if server.user_id_key_file is not None:
        update["user_id_key_file"] = _resolve(server.user_id_key_file, base_dir)
    if server.tls is not None:
        update["tls"] = TLSConfig(
            cert_file=_resolve(server.tls.cert_file, base_dir), key_file=_resolve(server.tls.key_file, base_dir)
        )
    return config.model_copy(update={"server": server.model_copy(update=update)})


def _check_readable(path: str, field: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(f"{field}: cannot read {path}: {error.strerror}") from None
    if not content.strip():
        raise ConfigurationError(f"{field}: {path} is empty")
    return content


def check_environment(config: MicrobanditConfig) -> None:
    """Check what the configuration names outside itself, before the server starts.

    The data directory must be a directory this process can create and
    write. The user-id key file and the TLS certificate and key must be
    readable, non-empty files, and the certificate and key must be PEM.

    Raises
    ------
    ConfigurationError
        Naming the field, the path and the reason.
    """
    server = config.server
    data_dir = config.data_path()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigurationError(
            f"server.data_dir: {data_dir} is not a writable directory ({error.strerror}); "
            "choose another directory or fix its permissions"
        ) from None
    if server.user_id_key_file is not None:
        _check_readable(server.user_id_key_file, "server.user_id_key_file")
    if server.tls is not None:
        certificate = _check_readable(server.tls.cert_file, "server.tls.cert_file")
        if b"-----BEGIN CERTIFICATE-----" not in certificate:
            raise ConfigurationError(f"server.tls.cert_file: {server.tls.cert_file} contains no PEM certificate")
        key = _check_readable(server.tls.key_file, "server.tls.key_file")
        if b"PRIVATE KEY-----" not in key or b"ENCRYPTED" in key:
            raise ConfigurationError(
                f"server.tls.key_file: {server.tls.key_file} contains no unencrypted PEM private key"
            )


def default_config_text() -> str:
    """Return the text of the embedded example configuration."""
    return resources.files("serving").joinpath("examples", DEFAULT_CONFIG_RESOURCE).read_text(encoding="utf-8")


def load_config(path: str | os.PathLike[str] | None = None) -> MicrobanditConfig:
    """Read and validate a YAML configuration file; ``None`` loads the embedded example.

    A relative ``server.data_dir`` is resolved against the file's directory
    (against the working directory for the embedded example).

    Raises
    ------
    ConfigurationError
        If the file cannot be read, is not YAML, or has invalid fields.
    """
    if path is None:
        text, base_dir = default_config_text(), Path.cwd()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"cannot read configuration file {path}: {error}") from error
        base_dir = Path(path).resolve().parent
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigurationError(f"configuration file {path or DEFAULT_CONFIG_RESOURCE} is not valid YAML: {error}") from error
    return parse_config(data, base_dir)
