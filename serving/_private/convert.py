"""Conversion between protocol-buffer messages and the decision loop's types.

Requests are validated here, once, at the gRPC boundary: every error is a
``ValueError`` or ``TypeError`` whose message starts with the field path
(``actions[2].id``, ``context.device.type``), so the client sees which field
to fix. Inner code trusts the converted values.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bandit.events import DecisionRecord, LearningMode, RewardStatus
from bandit.loop import MAX_EVENT_ID_LENGTH, validate_event_id
from bandit.features import Action, FeatureValue, Namespaces, validate_namespaces
from bandit.settings import validate_policy_name
from protos.microbandit.v1 import decision_service_pb2 as pb

__all__ = [
    "ChooseInput",
    "ActionCache",
    "choose_input",
    "validate_event_id",
    "validate_optional_id",
    "check_policy_name",
    "decision_response",
    "learning_mode_to_proto",
    "reward_status_to_proto",
    "MAX_EVENT_ID_LENGTH",
    "MAX_NAMESPACES",
    "MAX_FEATURES_PER_NAMESPACE",
    "MAX_USER_ID_LENGTH",
]

MAX_NAMESPACES = 64
"""Maximum number of namespaces in one context or one action."""
MAX_FEATURES_PER_NAMESPACE = 1024
"""Maximum number of features in one namespace."""
MAX_USER_ID_LENGTH = 256
"""Maximum length of a user id, in characters."""

_LEARNING_MODES = {
    LearningMode.ONLINE: pb.LEARNING_MODE_ONLINE,
    LearningMode.APPRENTICE: pb.LEARNING_MODE_APPRENTICE,
    LearningMode.LOGGING_ONLY: pb.LEARNING_MODE_LOGGING_ONLY,
}
_REWARD_STATUSES = {
    RewardStatus.ACCEPTED: pb.REWARD_STATUS_ACCEPTED,
    RewardStatus.LATE: pb.REWARD_STATUS_LATE,
    RewardStatus.DUPLICATE: pb.REWARD_STATUS_DUPLICATE,
    RewardStatus.PENDING_DECISION: pb.REWARD_STATUS_PENDING_DECISION,
    RewardStatus.ORPHAN: pb.REWARD_STATUS_ORPHAN,
}


def learning_mode_to_proto(mode: LearningMode) -> int:
    """Return the proto enum value of a learning mode."""
    return _LEARNING_MODES[mode]


def reward_status_to_proto(status: RewardStatus) -> int:
    """Return the proto enum value of a reward status."""
    return _REWARD_STATUSES[status]


def validate_optional_id(value: str, field: str) -> str | None:
    """Check an optional id field: empty means absent, otherwise like an event id."""
    if not value:
        return None
    return validate_event_id(value, field)


def _feature_value(value: pb.FeatureValue, where: str) -> FeatureValue:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise ValueError(f"{where} must be a finite number, got {number!r}")
        return number
    if kind == "bool_value":
        return value.bool_value
    raise ValueError(f"{where} has no value: set string_value, number_value or bool_value")


def _namespaces(message: Mapping[str, pb.Namespace], where: str) -> Namespaces:
    if len(message) > MAX_NAMESPACES:
        raise ValueError(f"{where} has {len(message)} namespaces, more than the limit of {MAX_NAMESPACES}")
    plain: dict[str, dict[str, FeatureValue]] = {}
    for ns_name, namespace in message.items():
        features = namespace.features
        if len(features) > MAX_FEATURES_PER_NAMESPACE:
            raise ValueError(
                f"{where}.{ns_name[:70]} has {len(features)} features, more than the limit of "
                f"{MAX_FEATURES_PER_NAMESPACE}"
            )
        plain[ns_name] = {name: _feature_value(value, f"{where}.{ns_name[:70]}.{name[:70]}") for name, value in features.items()}
    return validate_namespaces(plain, where)


class ActionCache:
    """Converted actions keyed by their serialized message.

    Services send the same candidate actions with most requests; converting
    and validating them once saves most of a decision's Python time. The
    last list of actions is also remembered whole, because consecutive
    requests (above all within one ChooseBatch) usually repeat it.

    Parameters
    ----------
    size : int
        Maximum number of actions kept; the least recently used is evicted first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._actions: OrderedDict[bytes, Action] = OrderedDict()
        self._last_message: Any = None
        self._last_limit = 0
        self._last_actions: tuple[Action, ...] = ()

    def convert(self, message: pb.Action, where: str) -> Action:
        """Return the validated :class:`~bandit.features.Action` of ``message``."""
        key = message.SerializeToString(deterministic=True)
        action = self._actions.get(key)
        if action is not None:
            self._actions.move_to_end(key)
            return action
        if not message.id:
            raise ValueError(f"{where}.id is empty: every action needs an id")
        try:
            action = Action(message.id, _namespaces(message.features, f"{where}.features"))
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: {error}") from None
        self._actions[key] = action
        if len(self._actions) > self.size:
            self._actions.popitem(last=False)
        return action

    def convert_all(self, messages: Any, max_actions: int, prefix: str) -> tuple[Action, ...]:
        """Validate a request's repeated ``actions`` field: 1 to ``max_actions`` actions with unique ids."""
        if self._last_message is not None and max_actions == self._last_limit and messages == self._last_message:
            return self._last_actions
        count = len(messages)
        if count == 0:
            raise ValueError(f"{prefix}actions is empty: send at least one candidate action")
        if count > max_actions:
            raise ValueError(f"{prefix}actions has {count} entries, more than the policy's max_actions of {max_actions}")
        actions = tuple(self.convert(message, f"{prefix}actions[{i}]") for i, message in enumerate(messages))
        seen: set[str] = set()
        for index, action in enumerate(actions):
            if action.id in seen:
                raise ValueError(f"{prefix}actions[{index}].id {action.id[:70]!r} is a duplicate: action ids must be unique")
            seen.add(action.id)
        self._last_message, self._last_limit, self._last_actions = messages, max_actions, actions
        return actions


@dataclass(frozen=True, slots=True)
class ChooseInput:
    """A validated Choose request."""

    policy: str
    event_id: str | None
    context: Namespaces
    actions: tuple[Action, ...]
    excluded_ids: tuple[str, ...]
    deferred: bool
    user_id: str | None
    consent: int


def choose_input(
    request: pb.ChooseRequest,
    max_actions: int,
    cache: ActionCache,
    prefix: str = "",
) -> ChooseInput:
    """Validate a Choose request.

    Parameters
    ----------
    request : ChooseRequest
        The message as received.
    max_actions : int
        The policy's limit on candidate actions.
    cache : ActionCache
        Converted actions, reused across requests.
    prefix : str
        Field path of the request inside a batch, for example ``"requests[3]."``.

    Raises
    ------
    ValueError
        Naming the first invalid field.
    """
    if not request.context or not any(ns.features for ns in request.context.values()):
        raise ValueError(f"{prefix}context is missing: send at least one namespace with at least one feature")
    context = _namespaces(request.context, f"{prefix}context")

    actions = cache.convert_all(request.actions, max_actions, prefix)
    ids = {action.id for action in actions}

    excluded = tuple(request.excluded_action_ids)
    for index, action_id in enumerate(excluded):
        if action_id not in ids:
            raise ValueError(f"{prefix}excluded_action_ids[{index}] {action_id[:70]!r} is not an id in actions")
    if len(set(excluded)) >= len(ids):
        raise ValueError(f"{prefix}excluded_action_ids excludes every action: at least one must stay eligible")

    event_id = validate_optional_id(request.event_id, f"{prefix}event_id")
    if len(request.user_id) > MAX_USER_ID_LENGTH:
        raise ValueError(f"{prefix}user_id has {len(request.user_id)} characters, more than {MAX_USER_ID_LENGTH}")
    if request.consent not in (pb.CONSENT_UNSPECIFIED, pb.CONSENT_GRANTED, pb.CONSENT_DENIED):
        raise ValueError(f"{prefix}consent {request.consent} is not a Consent value")
    return ChooseInput(
        policy=request.policy,
        event_id=event_id,
        context=context,
        actions=actions,
        excluded_ids=excluded,
        deferred=request.defer_activation,
        user_id=request.user_id or None,
        consent=request.consent,
    )


def check_policy_name(name: str, field: str = "policy") -> str:
    """Check a policy name's characters, naming the field."""
    if not name:
        raise ValueError(f"{field} is empty: name a configured policy")
    try:
        return validate_policy_name(name)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def decision_response(decision: DecisionRecord, replayed: bool = False) -> pb.ChooseResponse:
    """Build the Choose response of a decision; the ranking is sorted by probability, stably."""
    order: Sequence[int] = sorted(range(len(decision.pmf)), key=lambda i: -decision.pmf[i])
    return pb.ChooseResponse(
        event_id=decision.event_id,
        action_id=decision.chosen_action,
        probability=decision.probability,
        ranking=[pb.RankedAction(action_id=decision.action_ids[i], probability=decision.pmf[i]) for i in order],
        model_version=decision.model_version,
        learning_mode=learning_mode_to_proto(decision.learning_mode),
        replayed=replayed,
    )
