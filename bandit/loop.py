"""The in-process decision loop: choose, reward, activate, advance.

:class:`DecisionLoop` ties a :class:`~bandit.policy.Policy` to a
:class:`~bandit.learner.Learner` in one process. The server splits the same
two roles across Ray processes; simulations and notebooks use this class
directly. Time comes from an injectable clock (float seconds since the
epoch), so a test or a simulation controls it completely.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bandit.events import DecisionRecord, JoinedEvent, LearningMode, RewardRecord, RewardStatus
from bandit.features import Action, Namespaces
from bandit.learner import Learner, check_reward_value
from bandit.settings import PolicySettings

__all__ = ["DecisionLoop", "Decision", "validate_event_id", "MAX_EVENT_ID_LENGTH"]

logger = logging.getLogger(__name__)

MAX_EVENT_ID_LENGTH = 128
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_RECENT_DECISIONS = 10_000


def validate_event_id(event_id: object, field_name: str = "event_id") -> str:
    """Check an event id: 1 to 128 characters from ``[A-Za-z0-9_.:-]``."""
    if not isinstance(event_id, str):
        raise TypeError(f"{field_name} must be a str, got {type(event_id).__name__}")
    if not _EVENT_ID.fullmatch(event_id):
        raise ValueError(
            f"{field_name} {event_id[:70]!r} is invalid: use 1 to {MAX_EVENT_ID_LENGTH} characters "
            "from [A-Za-z0-9_.:-]"
        )
    return event_id


@dataclass(frozen=True)
class Decision:
    """Result of :meth:`DecisionLoop.choose`."""

    event_id: str
    chosen_action: str
    probability: float
    model_version: int
    learning_mode: LearningMode
    record: DecisionRecord

    @property
    def ranking(self) -> tuple[tuple[str, float], ...]:
        """Every eligible action with its probability, highest first (ties in scoring order)."""
        pairs = zip(self.record.action_ids, self.record.pmf)
        return tuple(sorted(pairs, key=lambda pair: -pair[1]))

    @classmethod
    def from_record(cls, record: DecisionRecord) -> Decision:
        """Build the result from a decision record."""
        return cls(
            event_id=record.event_id,
            chosen_action=record.chosen_action,
            probability=record.probability,
            model_version=record.model_version,
            learning_mode=record.learning_mode,
            record=record,
        )


class DecisionLoop:
    """One policy's whole loop in-process.

    Parameters
    ----------
    settings : PolicySettings
        The policy's settings.
    data_dir : str or os.PathLike or None
        Where the event log and checkpoint live; ``None`` keeps all in memory.
    clock : callable returning float, optional
        Seconds since the epoch; defaults to :func:`time.time`. Simulations
        and tests pass a simulated clock.
    restore : bool
        Restore from ``data_dir`` if it contains a checkpoint or log.

    Examples
    --------
    >>> from bandit import Action, DecisionLoop, PolicySettings
    >>> now = [0.0]
    >>> loop = DecisionLoop(PolicySettings("demo"), clock=lambda: now[0])
    >>> actions = [Action("a", {}), Action("b", {})]
    >>> decision = loop.choose({"user": {"device": "mobile"}}, actions)
    >>> loop.reward(decision.event_id, 1.0).value
    'accepted'
    >>> len(loop.advance())  # earliest aggregation joined at the reward
    0
    """

    def __init__(
        self,
        settings: PolicySettings,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        restore: bool = True,
    ) -> None:
        self.settings = settings
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self.learner = Learner(settings, data_dir, restore=restore)
        # A generated event id is a prefix drawn from (seed, model version at
        # start) plus a counter, so equally seeded loops generate the same ids.
        # A restart with anything logged starts a new model version, so it
        # never repeats an id already in the log.
        prefix_rng = np.random.default_rng([settings.seed, self.learner.policy.model_version])
        self._id_prefix = prefix_rng.bytes(8).hex()
        self._id_counter = 0
        self._recent: OrderedDict[str, Decision] = OrderedDict()

    @property
    def policy(self):  # noqa: ANN201 - the learner's current Policy
        """The policy being learned (replaced when a checkpoint is restored)."""
        return self.learner.policy

    def _new_event_id(self) -> str:
        self._id_counter += 1
        return f"{self._id_prefix}-{self._id_counter:08x}"

    def choose(
        self,
        context: Namespaces,
        actions: Sequence[Action],
        *,
        event_id: str | None = None,
        excluded_ids: Sequence[str] = (),
        defer_activation: bool = False,
        user_id: str | None = None,
        consent: bool = True,
    ) -> Decision:
        """Decide for one context and, with consent, log the decision for learning.

        Repeating an ``event_id`` returns the original decision.

        Raises
        ------
        ValueError
            For invalid context, actions, ids, or no eligible action.
        BackpressureError
            If the join's pending limit is reached.
        """
        if event_id is None or event_id == "":
            event_id = self._new_event_id()
        else:
            validate_event_id(event_id)
            previous = self._recent.get(event_id)
            if previous is not None:
                return previous
        record = self.policy.decide(
            context,
            actions,
            event_id=event_id,
            timestamp=self.clock(),
            excluded_ids=excluded_ids,
            deferred=defer_activation,
            user_id=user_id,
        )
        if consent:
            self.learner.record_decision(record)
        decision = Decision.from_record(record)
        self._recent[event_id] = decision
        if len(self._recent) > _RECENT_DECISIONS:
            self._recent.popitem(last=False)
        return decision

    def reward(self, event_id: str, value: float, reward_id: str | None = None) -> RewardStatus:
        """Record a reward for an event; return how the join classified it."""
        validate_event_id(event_id)
        if reward_id is not None:
            validate_event_id(reward_id, "reward_id")
        value = check_reward_value(value, self.settings)
        record = RewardRecord(event_id, self.settings.name, self.clock(), value, reward_id)
        return self.learner.record_reward(record)

    def activate(self, event_id: str) -> str:
        """Activate a deferred decision; return the activation status."""
        validate_event_id(event_id)
        return self.learner.record_activation(event_id, self.clock())

    def advance(self, now: float | None = None) -> list[JoinedEvent]:
        """Close windows ended by ``now`` (default: the clock), learn, and publish a new version."""
        joined = self.learner.advance(self.clock() if now is None else now)
        self.learner.publish()
        return joined

    def flush(self) -> None:
        """Make buffered log records durable."""
        self.learner.flush()

    def checkpoint(self) -> None:
        """Flush the log and save the model."""
        self.learner.checkpoint()

    def close(self) -> None:
        """Checkpoint (when persistent) and release the model."""
        if self.learner.data_dir is not None:
            self.learner.checkpoint()
        self.learner.close()
