"""The decision path of a decider replica, without Ray or gRPC transport.

:class:`DeciderCore` keeps a predict-only :class:`~bandit.policy.Policy`
snapshot per policy, validates Choose requests, decides, remembers recent
decisions so a repeated event id gets the original response, and buffers the
decision records for the learners. The Ray Serve deployment in
:mod:`serving.app` wraps it; unit tests drive it directly with a fake clock.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bandit.errors import BackpressureError
from bandit.events import DecisionRecord
from bandit.policy import Policy
from bandit.privacy import keyed_pseudonym
from bandit.settings import PolicySettings
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving._private.convert import (
    ActionCache,
    ChooseInput,
    check_policy_name,
    choose_input,
    decision_response,
    validate_event_id,
    validate_optional_id,
)
from serving._private.grpc_service import UndecodableRequest
from serving.config import MicrobanditConfig, PolicyConfig
from serving.errors import AuthenticationError, MessageTooLargeError, UnknownPolicyError

__all__ = ["DeciderCore", "PolicySlot", "RewardInput", "pseudonymize"]

logger = logging.getLogger(__name__)


def pseudonymize(user_id: str, key: bytes) -> str:
    """Return the keyed pseudonym of a user id, as :class:`bandit.privacy.Pseudonymizer` computes it."""
    return keyed_pseudonym(key, user_id)


@dataclass
class PolicySlot:
    """Model snapshot, settings, replay memory and decision buffer of one policy in a decider."""

    config: PolicyConfig
    settings: PolicySettings
    policy: Policy
    recent: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    buffer: list[DecisionRecord] = field(default_factory=list)
    learner_pending: int = 0

    @property
    def model_version(self) -> int:
        """Version of the model snapshot in use."""
        return self.policy.model_version


@dataclass(frozen=True, slots=True)
class RewardInput:
    """A validated Reward request."""

    policy: str
    event_id: str
    value: float
    reward_id: str | None


class DeciderCore:
    """Decisions of one replica for every configured policy.

    Parameters
    ----------
    config : MicrobanditConfig
        The validated configuration.
    user_id_key : bytes
        Secret key of :func:`pseudonymize`; the server loads it with
        :func:`bandit.privacy.load_pseudonym_key`, which requires 16 bytes or more.
    clock : callable
        Returns the current time in seconds since the Unix epoch.
    new_event_id : callable, optional
        Returns a fresh event id; by default 32 random hexadecimal characters.
    auth_token : str, optional
        Bearer token every call must send; ``None`` turns authentication off.
    """

    def __init__(
        self,
        config: MicrobanditConfig,
        user_id_key: bytes,
        clock: Callable[[], float],
        new_event_id: Callable[[], str] | None = None,
        auth_token: str | None = None,
    ) -> None:
        self.config = config
        self._expected_authorization = f"Bearer {auth_token}".encode() if auth_token else None
        self._user_id_key = user_id_key
        self._clock = clock
        self._new_event_id = new_event_id or (lambda: secrets.token_hex(16))
        self._actions = ActionCache()
        self.slots: dict[str, PolicySlot] = {}
        for policy_config in config.policies:
            settings = policy_config.build()
            self.slots[policy_config.name] = PolicySlot(policy_config, settings, Policy(settings))
            if settings.accepted_namespaces is not None:
                logger.info(
                    "policy %r accepts only the namespaces %s and %s",
                    settings.name,
                    list(settings.accepted_namespaces),
                    "rejects requests with others"
                    if settings.undeclared_namespaces == "reject"
                    else "drops others before scoring and logging",
                )

    # -- lookups ------------------------------------------------------------

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        """Check the ``authorization`` metadata when a token is configured.

        Raises
        ------
        AuthenticationError
            If the metadata lacks ``authorization: Bearer <token>`` or the
            token differs. The message never contains the token.
        """
        if self._expected_authorization is None:
            return
        for key, value in metadata:
            if key.lower() == "authorization":
                sent = value if isinstance(value, bytes) else value.encode()
                if hmac.compare_digest(sent, self._expected_authorization):
                    return
                raise AuthenticationError("the authorization metadata carries a wrong token")
        raise AuthenticationError("authorization metadata is missing: send 'authorization: Bearer <token>'")

    def slot(self, name: str, field_name: str = "policy") -> PolicySlot:
        """Return the slot of a policy named in a request field."""
        check_policy_name(name, field_name)
        slot = self.slots.get(name)
        if slot is None:
            raise UnknownPolicyError(f"{field_name} {name!r} is not a configured policy; configured: {sorted(self.slots)}")
        return slot

    def policy_of(self, name: str, field_name: str = "policy") -> PolicySlot:
        """Return the slot of a Reward or Activate request, whose policy may be omitted with one policy."""
        if not name and len(self.slots) == 1:
            return next(iter(self.slots.values()))
        if not name:
            raise ValueError(f"{field_name} is empty: the server has {len(self.slots)} policies, name one")
        return self.slot(name, field_name)

    def check_size(self, message: object) -> None:
        """Reject an undecodable message or one larger than ``server.max_message_bytes``."""
        if isinstance(message, UndecodableRequest):
            raise ValueError(f"request is not a valid {message.type_name} message: {message.error}")
        size = message.ByteSize()  # type: ignore[attr-defined]
        limit = self.config.server.max_message_bytes
        if size > limit:
            raise MessageTooLargeError(f"request message is {size} bytes, more than the limit of {limit} bytes")

    # -- decisions ----------------------------------------------------------

    def _check_capacity(self, slot: PolicySlot, count: int) -> None:
        buffered = sum(len(s.buffer) for s in self.slots.values())
        limit = self.config.server.decision_buffer_size
        if buffered + count > limit:
            raise BackpressureError(
                f"{buffered} decision records are waiting for the learners, the decision_buffer_size limit "
                f"is {limit}; retry later"
            )
        max_pending = slot.settings.join.max_pending
        if slot.learner_pending + len(slot.buffer) + count > max_pending:
            raise BackpressureError(
                f"policy {slot.settings.name!r} has {slot.learner_pending} decisions waiting for rewards, "
                f"near its join.max_pending limit of {max_pending}; retry later"
            )

    def _decide(self, slot: PolicySlot, request: ChooseInput, now: float) -> pb.ChooseResponse:
        if request.event_id is not None:
            previous = slot.recent.get(request.event_id)
            if previous is not None:
                replay = pb.ChooseResponse.FromString(previous)
                replay.replayed = True
                return replay
        event_id = request.event_id or self._new_event_id()
        user = pseudonymize(request.user_id, self._user_id_key) if request.user_id is not None else None
        decision = slot.policy.decide(
            request.context,
            request.actions,
            event_id=event_id,
            timestamp=now,
            excluded_ids=request.excluded_ids,
            deferred=request.deferred,
            user_id=user,
        )
        denied = request.consent == pb.CONSENT_DENIED or (
            request.consent == pb.CONSENT_UNSPECIFIED and slot.config.require_consent
        )
        if not denied:
            slot.buffer.append(decision)
        response = decision_response(decision)
        memory = self.config.server.event_id_memory
        if memory:
            # Serialized responses, not records: bytes are compact and the
            # garbage collector does not traverse them.
            slot.recent[event_id] = response.SerializeToString()
            if len(slot.recent) > memory:
                slot.recent.popitem(last=False)
        return response

    def choose(self, request: pb.ChooseRequest) -> pb.ChooseResponse:
        """Validate one Choose request and decide.

        Raises
        ------
        ValueError, TypeError
            For a malformed field, named in the message.
        UnknownPolicyError
            For a policy that is not configured.
        BackpressureError
            When the buffer of decision records is full.
        """
        self.check_size(request)
        slot = self.slot(request.policy)
        validated = choose_input(request, slot.settings.max_actions, self._actions)
        self._check_capacity(slot, 1)
        return self._decide(slot, validated, self._clock())

    def choose_batch(self, request: pb.ChooseBatchRequest) -> pb.ChooseBatchResponse:
        """Validate every request of a batch, then decide them in order.

        Nothing is decided unless every request is valid.
        """
        self.check_size(request)
        count = len(request.requests)
        limit = self.config.server.max_batch_size
        if count == 0:
            raise ValueError("requests is empty: send at least one Choose request")
        if count > limit:
            raise ValueError(f"requests has {count} entries, more than the max_batch_size of {limit}")
        prepared: list[tuple[PolicySlot, ChooseInput]] = []
        for index, item in enumerate(request.requests):
            prefix = f"requests[{index}]."
            slot = self.slot(item.policy, f"{prefix}policy")
            prepared.append((slot, choose_input(item, slot.settings.max_actions, self._actions, prefix)))
        per_slot: dict[str, int] = {}
        for slot, _ in prepared:
            per_slot[slot.settings.name] = per_slot.get(slot.settings.name, 0) + 1
        for name, n in per_slot.items():
            self._check_capacity(self.slots[name], n)

        now = self._clock()
        responses = [self._decide(slot, validated, now) for slot, validated in prepared]
        return pb.ChooseBatchResponse(responses=responses)

    # -- rewards and activations ----------------------------------------------

    def reward_input(self, request: pb.RewardRequest) -> RewardInput:
        """Validate a Reward request against its policy's reward range."""
        self.check_size(request)
        slot = self.policy_of(request.policy)
        event_id = validate_event_id(request.event_id)
        reward_id = validate_optional_id(request.reward_id, "reward_id")
        value = request.value
        if not math.isfinite(value):
            raise ValueError(f"value must be a finite number, got {value!r}")
        low, high = slot.settings.reward_range
        if not low <= value <= high:
            raise ValueError(f"value {value!r} is outside the policy's reward_range [{low}, {high}]")
        return RewardInput(slot.settings.name, event_id, value, reward_id)

    def activate_input(self, request: pb.ActivateRequest) -> tuple[str, str]:
        """Validate an Activate request; return (policy, event id)."""
        self.check_size(request)
        slot = self.policy_of(request.policy)
        return slot.settings.name, validate_event_id(request.event_id)

    # -- learner traffic ------------------------------------------------------

    def take_buffer(self, policy: str) -> list[DecisionRecord]:
        """Remove and return the buffered decision records of a policy."""
        slot = self.slots[policy]
        records, slot.buffer = slot.buffer, []
        return records

    def return_to_buffer(self, policy: str, records: Sequence[DecisionRecord]) -> int:
        """Put records that could not be sent back at the front; return how many were dropped.

        Records beyond ``decision_buffer_size`` are dropped, oldest first.
        """
        slot = self.slots[policy]
        combined = list(records) + slot.buffer
        limit = self.config.server.decision_buffer_size
        dropped = max(0, len(combined) - limit)
        slot.buffer = combined[dropped:]
        return dropped

    def install_model(self, policy: str, checkpoint: bytes) -> int:
        """Replace a policy's snapshot with a model from checkpoint bytes; return its version.

        Raises
        ------
        CheckpointError
            If the bytes are corrupt or saved with other model settings.
        """
        slot = self.slots[policy]
        fresh = Policy.from_checkpoint(checkpoint, slot.settings)
        # Each dropped namespace is logged once per replica, not once per model version.
        fresh._dropped_reported = slot.policy._dropped_reported
        old, slot.policy = slot.policy, fresh
        old.close()
        return fresh.model_version

    def close(self) -> None:
        """Release every VW workspace."""
        for slot in self.slots.values():
            slot.policy.close()
