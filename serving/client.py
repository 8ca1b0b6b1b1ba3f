"""A small synchronous gRPC client of the decision server.

Example::

    from serving.client import DecisionClient

    with DecisionClient("127.0.0.1:9000") as client:
        decision = client.choose(
            "micro_adjustments",
            context={"device": {"type": "mobile", "network": "wifi"}, "time": {"hour": 21}},
            actions=["cta_buy_now|img_standard|layout_full", "cta_buy_now|img_large|layout_simplified"],
        )
        client.reward(decision.event_id, 1.0, policy="micro_adjustments")

Every call has a timeout (``timeout`` seconds, 5 by default) and raises a
:class:`ClientError` subclass that carries the gRPC status code and the
server's message.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bandit.features import Action
from protos.microbandit.v1 import decision_service_pb2 as pb
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc

__all__ = [
    "DecisionClient",
    "Decision",
    "PolicyInfo",
    "ChooseArgs",
    "ClientError",
    "InvalidRequestError",
    "NotFoundError",
    "UnavailableError",
    "DeadlineExceededError",
    "AuthenticationError",
    "ServerError",
    "DEFAULT_TIMEOUT",
    "to_choose_request",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds a call may take before it fails with :class:`DeadlineExceededError`."""

_LEARNING_MODES = {
    pb.LEARNING_MODE_ONLINE: "online",
    pb.LEARNING_MODE_APPRENTICE: "apprentice",
    pb.LEARNING_MODE_LOGGING_ONLY: "logging_only",
}
_REWARD_STATUSES = {
    pb.REWARD_STATUS_ACCEPTED: "accepted",
    pb.REWARD_STATUS_LATE: "late",
    pb.REWARD_STATUS_DUPLICATE: "duplicate",
    pb.REWARD_STATUS_PENDING_DECISION: "pending_decision",
    pb.REWARD_STATUS_ORPHAN: "orphan",
}
_CONSENT = {None: pb.CONSENT_UNSPECIFIED, True: pb.CONSENT_GRANTED, False: pb.CONSENT_DENIED}


class ClientError(Exception):
    """A call failed; ``code`` is the gRPC status code and ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str) -> None:
        super().__init__(f"{method} failed with {code.name}: {details}")
        self.code = code
        self.details = details
        self.method = method


class InvalidRequestError(ClientError, ValueError):
    """The server rejected a field of the request (INVALID_ARGUMENT)."""


class NotFoundError(ClientError, LookupError):
    """The policy or event does not exist (NOT_FOUND)."""


class UnavailableError(ClientError):
    """The server is overloaded, starting or stopping; retry later (UNAVAILABLE, RESOURCE_EXHAUSTED)."""


class AuthenticationError(ClientError, PermissionError):
    """The server requires a bearer token and got none or a wrong one (UNAUTHENTICATED)."""


class DeadlineExceededError(ClientError, TimeoutError):
    """The call did not finish within its timeout (DEADLINE_EXCEEDED)."""


class ServerError(ClientError):
    """Any other failure (INTERNAL, UNKNOWN, FAILED_PRECONDITION, ...)."""


def _error_for(error: grpc.RpcError, method: str) -> ClientError:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or ""  # type: ignore[attr-defined]
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(code, details, method)
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFoundError(code, details, method)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return UnavailableError(code, details, method)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(code, details, method)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(code, details, method)
    return ServerError(code, details, method)


@dataclass(frozen=True)
class Decision:
    """The response to one Choose request."""

    event_id: str
    action_id: str
    probability: float
    ranking: tuple[tuple[str, float], ...]
    model_version: int
    learning_mode: str
    replayed: bool

    @classmethod
    def from_proto(cls, message: pb.ChooseResponse) -> Decision:
        """Convert a ChooseResponse."""
        return cls(
            event_id=message.event_id,
            action_id=message.action_id,
            probability=message.probability,
            ranking=tuple((r.action_id, r.probability) for r in message.ranking),
            model_version=message.model_version,
            learning_mode=_LEARNING_MODES.get(message.learning_mode, "unspecified"),
            replayed=message.replayed,
        )

    @property
    def pmf(self) -> dict[str, float]:
        """Probability of each eligible action, keyed by action id."""
        return dict(self.ranking)


@dataclass(frozen=True)
class PolicyInfo:
    """Settings and learning state of one policy."""

    name: str
    settings_json: str
    vw_args: tuple[str, ...]
    learning_mode: str
    model_version: int
    examples_learned: int
    decisions: int
    rewards: int
    last_model_update: float
    apprentice_match_rate: float
    pending_decisions: int
    model_update_interval: float
    model_age: float = 0.0
    learner_available: bool = True
    decisions_lost: int = 0

    @classmethod
    def from_proto(cls, message: pb.PolicyInfo) -> PolicyInfo:
        """Convert a PolicyInfo message."""
        return cls(
            name=message.name,
            settings_json=message.settings_json,
            vw_args=tuple(message.vw_args),
            learning_mode=_LEARNING_MODES.get(message.learning_mode, "unspecified"),
            model_version=message.model_version,
            examples_learned=message.examples_learned,
            decisions=message.decisions,
            rewards=message.rewards,
            last_model_update=message.last_model_update_unix_seconds,
            apprentice_match_rate=message.apprentice_match_rate,
            pending_decisions=message.pending_decisions,
            model_update_interval=message.model_update_interval_seconds,
            model_age=message.model_age_seconds,
            learner_available=message.learner_available,
            decisions_lost=message.decisions_lost,
        )


ActionLike = Action | str | Mapping[str, Any]


@dataclass(frozen=True)
class ChooseArgs:
    """One request of :meth:`DecisionClient.choose_batch`; fields as in :meth:`DecisionClient.choose`."""

    policy: str
    context: Mapping[str, Mapping[str, Any]]
    actions: Sequence[ActionLike]
    event_id: str | None = None
    excluded_action_ids: Sequence[str] = ()
    defer_activation: bool = False
    user_id: str | None = None
    consent: bool | None = None


def _feature_value(value: object, where: str) -> pb.FeatureValue:
    if isinstance(value, bool):
        return pb.FeatureValue(bool_value=value)
    if isinstance(value, (int, float)):
        return pb.FeatureValue(number_value=float(value))
    if isinstance(value, str):
        return pb.FeatureValue(string_value=value)
    raise TypeError(f"{where} must be a str, number or bool, got {type(value).__name__}")


def _namespaces(namespaces: Mapping[str, Mapping[str, Any]], where: str) -> dict[str, pb.Namespace]:
    if not isinstance(namespaces, Mapping):
        raise TypeError(f"{where} must be a mapping of namespace to features, got {type(namespaces).__name__}")
    result = {}
    for name, features in namespaces.items():
        if not isinstance(features, Mapping):
            raise TypeError(f"{where}.{name} must be a mapping of feature name to value")
        result[name] = pb.Namespace(
            features={key: _feature_value(value, f"{where}.{name}.{key}") for key, value in features.items()}
        )
    return result


def _action(action: ActionLike, index: int) -> pb.Action:
    if isinstance(action, str):
        return pb.Action(id=action)
    if isinstance(action, Action):
        return pb.Action(id=action.id, features=_namespaces(action.features, f"actions[{index}].features"))
    if isinstance(action, Mapping):
        return pb.Action(id=action["id"], features=_namespaces(action.get("features", {}), f"actions[{index}].features"))
    raise TypeError(f"actions[{index}] must be an Action, an id or a mapping, got {type(action).__name__}")


def to_choose_request(args: ChooseArgs) -> pb.ChooseRequest:
    """Build the ChooseRequest message of one request."""
    return pb.ChooseRequest(
        policy=args.policy,
        event_id=args.event_id or "",
        context=_namespaces(args.context, "context"),
        actions=[_action(a, i) for i, a in enumerate(args.actions)],
        excluded_action_ids=list(args.excluded_action_ids),
        defer_activation=args.defer_activation,
        user_id=args.user_id or "",
        consent=_CONSENT[args.consent],
    )


class DecisionClient:
    """Synchronous client of ``microbandit.v1.DecisionService``.

    Parameters
    ----------
    target : str or sequence of str
        ``host:port`` of the server, or several (the addresses of the decider
        replicas in direct ingress), used in turn call by call.
    timeout : float
        Default seconds per call.
    max_message_bytes : int
        Largest message the client sends or receives.
    token : str, optional
        Bearer token, for a server configured with ``server.auth_token_env``.
    tls : bool
        Connect with TLS, for a server configured with ``server.tls``.
        Implied by ``tls_ca_file``.
    tls_ca_file : path, optional
        PEM file of the certificate authority (or the self-signed
        certificate) that signed the server's certificate; default: the
        system's trusted roots.
    """

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:9000",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = 64 * 1024 * 1024,
        token: str | None = None,
        tls: bool = False,
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        targets = [target] if isinstance(target, str) else list(target)
        if not targets:
            raise ValueError("target must name at least one host:port")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.timeout = float(timeout)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        if tls or tls_ca_file is not None:
            root_certificates = Path(tls_ca_file).read_bytes() if tls_ca_file is not None else None
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channels = [grpc.secure_channel(t, credentials, options=options) for t in targets]
        else:
            self._channels = [grpc.insecure_channel(t, options=options) for t in targets]
        self._stubs = [pb_grpc.DecisionServiceStub(channel) for channel in self._channels]
        self._next = itertools.cycle(range(len(self._stubs)))

    def __enter__(self) -> DecisionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channels."""
        for channel in self._channels:
            channel.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every channel is connected; raise ``TimeoutError`` otherwise."""
        for channel in self._channels:
            try:
                grpc.channel_ready_future(channel).result(timeout=timeout)
            except grpc.FutureTimeoutError as error:
                raise TimeoutError(f"server not reachable within {timeout} s") from error

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        stub = self._stubs[next(self._next)]
        try:
            return getattr(stub, method)(
                request, timeout=timeout if timeout is not None else self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise _error_for(error, method) from None

    def choose(
        self,
        policy: str,
        context: Mapping[str, Mapping[str, Any]],
        actions: Sequence[ActionLike],
        *,
        event_id: str | None = None,
        excluded_action_ids: Sequence[str] = (),
        defer_activation: bool = False,
        user_id: str | None = None,
        consent: bool | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Choose an action.

        Parameters
        ----------
        policy : str
            Configured policy name.
        context : mapping
            Namespace to feature name to value (str, number or bool).
        actions : sequence
            Candidate actions: ids, :class:`~bandit.features.Action` objects,
            or ``{"id": ..., "features": {...}}`` mappings.
        event_id : str, optional
            Caller's event id; generated by the server when omitted.
        excluded_action_ids : sequence of str
            Action ids not to choose this time.
        defer_activation : bool
            Learn only if :meth:`activate` is called for this event.
        user_id : str, optional
            End-user id; the server logs only a keyed hash.
        consent : bool, optional
            Whether the decision may be learned from; ``None`` leaves it unspecified.
        timeout : float, optional
            Seconds for this call.
        """
        args = ChooseArgs(policy, context, actions, event_id, excluded_action_ids, defer_activation, user_id, consent)
        return Decision.from_proto(self._call("Choose", to_choose_request(args), timeout))

    def choose_batch(self, requests: Iterable[ChooseArgs], *, timeout: float | None = None) -> list[Decision]:
        """Choose for many requests in one call; all are rejected if one is malformed."""
        message = pb.ChooseBatchRequest(requests=[to_choose_request(r) for r in requests])
        response = self._call("ChooseBatch", message, timeout)
        return [Decision.from_proto(r) for r in response.responses]

    def reward(
        self,
        event_id: str,
        value: float,
        *,
        policy: str = "",
        reward_id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Send a reward; return its status (``accepted``, ``late``, ``duplicate``, ``pending_decision``, ``orphan``)."""
        request = pb.RewardRequest(policy=policy, event_id=event_id, value=value, reward_id=reward_id or "")
        response = self._call("Reward", request, timeout)
        return _REWARD_STATUSES.get(response.status, "unspecified")

    def activate(self, event_id: str, *, policy: str = "", timeout: float | None = None) -> bool:
        """Activate a deferred decision; return False when its window had closed."""
        response = self._call("Activate", pb.ActivateRequest(policy=policy, event_id=event_id), timeout)
        return response.activated

    def get_policy(self, policy: str, *, timeout: float | None = None) -> PolicyInfo:
        """Return the settings and learning state of a policy."""
        return PolicyInfo.from_proto(self._call("GetPolicy", pb.GetPolicyRequest(policy=policy), timeout))

    def list_policies(self, *, timeout: float | None = None) -> list[PolicyInfo]:
        """Return every policy's settings and learning state."""
        response = self._call("ListPolicies", pb.ListPoliciesRequest(), timeout)
        return [PolicyInfo.from_proto(p) for p in response.policies]
