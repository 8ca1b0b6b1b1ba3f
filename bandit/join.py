"""Reward join: match rewards and activations to decisions, once per window.

Each decision waits ``reward_wait_time`` seconds from its own timestamp. When
its window closes (at :meth:`RewardJoiner.advance`), or at its first reward
when aggregation is ``earliest``, it is emitted exactly once as a
:class:`~bandit.events.JoinedEvent`: with the aggregated rewards, with the
default reward when none came, or as ``not_activated`` when it was deferred
and never activated.

A reward whose timestamp is after its event's window is late: counted, never
learned. A repeated reward id of one event is counted once. A reward or
activation for an event not seen yet is held for ``orphan_hold_time`` seconds
and applied if the decision arrives; after that the reward is reported as an
orphan. Memory is bounded: past the ``max_pending`` limit new decisions and
held rewards raise :class:`~bandit.errors.BackpressureError`.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field

from bandit.errors import BackpressureError
from bandit.events import DecisionRecord, JoinedEvent, JoinOutcome, RewardRecord, RewardStatus
from bandit.settings import Aggregation, JoinSettings

__all__ = ["RewardJoiner", "ActivationStatus", "JoinStats"]

logger = logging.getLogger(__name__)


class ActivationStatus:
    """Outcome of an activation."""

    ACTIVATED = "activated"
    ALREADY_JOINED = "already_joined"
    LATE = "late"
    PENDING_DECISION = "pending_decision"


@dataclass
class JoinStats:
    """Counters of the join since it started."""

    decisions: int = 0
    rewards: int = 0
    accepted: int = 0
    late: int = 0
    duplicates: int = 0
    orphans: int = 0
    joined: int = 0
    defaulted: int = 0
    not_activated: int = 0


@dataclass
class _Pending:
    decision: DecisionRecord
    deadline: float
    activated: bool
    values: list[float] = field(default_factory=list)
    reward_ids: set[str] = field(default_factory=set)


def _aggregate(values: list[float], aggregation: Aggregation) -> float:
    if aggregation is Aggregation.EARLIEST:
        return values[0]
    if aggregation is Aggregation.SUM:
        return math.fsum(values)
    if aggregation is Aggregation.MEAN:
        return math.fsum(values) / len(values)
    if aggregation is Aggregation.MAX:
        return max(values)
    return min(values)


class RewardJoiner:
    """Joins one policy's decisions with their rewards.

    Parameters
    ----------
    settings : JoinSettings
        Wait time, default reward, aggregation and memory bounds.

    Notes
    -----
    Time comes only from record timestamps and the ``now`` passed to
    :meth:`advance`; the joiner never reads a clock.
    """

    def __init__(self, settings: JoinSettings) -> None:
        self.settings = settings
        self.stats = JoinStats()
        self._pending: dict[str, _Pending] = {}
        self._deadlines: list[tuple[float, str]] = []
        # Recently joined ids -> reward ids already counted, to classify late
        # rewards and duplicates after the join.
        self._closed: OrderedDict[str, set[str]] = OrderedDict()
        # Rewards and activations whose decision has not arrived: id -> items.
        self._held_rewards: dict[str, list[RewardRecord]] = {}
        self._held_activations: dict[str, float] = {}
        self._held_order: list[tuple[float, str]] = []

    @property
    def pending_count(self) -> int:
        """Decisions waiting for their window to close."""
        return len(self._pending)

    @property
    def held_count(self) -> int:
        """Events with rewards or activations held for a decision not seen yet."""
        return len(self._held_rewards.keys() | self._held_activations.keys())

    def is_pending(self, event_id: str) -> bool:
        """Return whether ``event_id`` is waiting for its window to close."""
        return event_id in self._pending

    def is_closed(self, event_id: str) -> bool:
        """Return whether ``event_id`` was joined recently."""
        return event_id in self._closed

    def pending_decision(self, event_id: str) -> DecisionRecord | None:
        """Return the decision of a pending event, or None."""
        entry = self._pending.get(event_id)
        return entry.decision if entry is not None else None

    def newest_pending(self, limit: int) -> list[DecisionRecord]:
        """Return the decisions of up to ``limit`` pending events, in the order they arrived, newest last."""
        if limit <= 0:
            return []
        entries = list(self._pending.values())[-limit:]
        return [entry.decision for entry in entries]

    def restore_closed(self, event_id: str, reward_ids: set[str]) -> None:
        """Remember an event joined before a restart, with the reward ids counted for it.

        A decision sent again for it is then recognized as already recorded,
        and a retried reward as a duplicate.
        """
        self._closed[event_id] = set(reward_ids)
        self._closed.move_to_end(event_id)
        if len(self._closed) > self.settings.closed_memory:
            self._closed.popitem(last=False)

    # -- decisions --------------------------------------------------------------

    def add_decision(self, decision: DecisionRecord) -> list[JoinedEvent]:
        """Start the window of a decision; return events joined at once (held rewards).

        Raises
        ------
        BackpressureError
            If ``max_pending`` decisions are already waiting.
        ValueError
            If the event id is already pending or was joined.
        """
        event_id = decision.event_id
        if event_id in self._pending or event_id in self._closed:
            raise ValueError(f"decision {event_id!r} was already recorded")
        if len(self._pending) >= self.settings.max_pending:
            raise BackpressureError(
                f"{len(self._pending)} decisions are waiting for rewards, the max_pending limit; "
                "retry after windows close or raise join.max_pending"
            )
        entry = _Pending(
            decision=decision,
            deadline=decision.timestamp + self.settings.reward_wait_time,
            activated=not decision.deferred,
        )
        self._pending[event_id] = entry
        heapq.heappush(self._deadlines, (entry.deadline, event_id))
        self.stats.decisions += 1

        joined: list[JoinedEvent] = []
        activation_time = self._held_activations.pop(event_id, None)
        if activation_time is not None and activation_time <= entry.deadline:
            entry.activated = True
        for reward in self._held_rewards.pop(event_id, []):
            status, now_joined = self._apply_reward(entry, reward)
            self._count_status(status)
            joined.extend(now_joined)
        return joined

    # -- rewards and activations ------------------------------------------------

    def add_reward(self, reward: RewardRecord) -> tuple[RewardStatus, list[JoinedEvent]]:
        """Apply one reward; return its status and any event joined because of it.

        Raises
        ------
        BackpressureError
            If a reward for an unseen decision arrives while ``max_pending``
            events are already held.
        """
        self.stats.rewards += 1
        entry = self._pending.get(reward.event_id)
        if entry is not None:
            status, joined = self._apply_reward(entry, reward)
            self._count_status(status)
            return status, joined
        closed_ids = self._closed.get(reward.event_id)
        if closed_ids is not None:
            if reward.reward_id is not None and reward.reward_id in closed_ids:
                self.stats.duplicates += 1
                return RewardStatus.DUPLICATE, []
            self.stats.late += 1
            return RewardStatus.LATE, []
        held = self._held_rewards.get(reward.event_id)
        if held is None:
            self._check_held_capacity(reward.event_id)
            held = self._held_rewards[reward.event_id] = []
            heapq.heappush(self._held_order, (reward.timestamp + self.settings.orphan_hold_time, reward.event_id))
        if reward.reward_id is not None and any(r.reward_id == reward.reward_id for r in held):
            self.stats.duplicates += 1
            return RewardStatus.DUPLICATE, []
        held.append(reward)
        return RewardStatus.PENDING_DECISION, []

    def activate(self, event_id: str, timestamp: float) -> tuple[str, list[JoinedEvent]]:
        """Activate a deferred decision; return the status and any event joined now."""
        entry = self._pending.get(event_id)
        if entry is not None:
            if timestamp > entry.deadline:
                return ActivationStatus.LATE, []
            entry.activated = True
            if self.settings.aggregation is Aggregation.EARLIEST and entry.values:
                return ActivationStatus.ACTIVATED, [self._close(event_id, timestamp)]
            return ActivationStatus.ACTIVATED, []
        if event_id in self._closed:
            return ActivationStatus.ALREADY_JOINED, []
        if event_id not in self._held_activations:
            if event_id not in self._held_rewards:
                self._check_held_capacity(event_id)
                heapq.heappush(self._held_order, (timestamp + self.settings.orphan_hold_time, event_id))
            self._held_activations[event_id] = timestamp
        return ActivationStatus.PENDING_DECISION, []

    def _check_held_capacity(self, event_id: str) -> None:
        if self.held_count >= self.settings.max_pending:
            raise BackpressureError(
                f"{self.held_count} events are held for decisions not seen yet, the max_pending limit; "
                f"event {event_id!r} was not accepted, retry later"
            )

    def _apply_reward(self, entry: _Pending, reward: RewardRecord) -> tuple[RewardStatus, list[JoinedEvent]]:
        if reward.reward_id is not None and reward.reward_id in entry.reward_ids:
            return RewardStatus.DUPLICATE, []
        if reward.timestamp > entry.deadline:
            return RewardStatus.LATE, []
        if reward.reward_id is not None:
            entry.reward_ids.add(reward.reward_id)
        entry.values.append(reward.value)
        if self.settings.aggregation is Aggregation.EARLIEST and entry.activated:
            return RewardStatus.ACCEPTED, [self._close(entry.decision.event_id, reward.timestamp)]
        return RewardStatus.ACCEPTED, []

    def _count_status(self, status: RewardStatus) -> None:
        if status is RewardStatus.ACCEPTED:
            self.stats.accepted += 1
        elif status is RewardStatus.LATE:
            self.stats.late += 1
        elif status is RewardStatus.DUPLICATE:
            self.stats.duplicates += 1

    # -- closing windows --------------------------------------------------------

    def _close(self, event_id: str, now: float) -> JoinedEvent:
        entry = self._pending.pop(event_id)
        if not entry.activated:
            outcome, reward = JoinOutcome.NOT_ACTIVATED, None
            self.stats.not_activated += 1
        elif entry.values:
            outcome, reward = JoinOutcome.OBSERVED, _aggregate(entry.values, self.settings.aggregation)
        else:
            outcome, reward = JoinOutcome.DEFAULT, self.settings.default_reward
            self.stats.defaulted += 1
        self.stats.joined += 1
        self._closed[event_id] = entry.reward_ids
        if len(self._closed) > self.settings.closed_memory:
            self._closed.popitem(last=False)
        return JoinedEvent(
            decision=entry.decision,
            reward=reward,
            outcome=outcome,
            reward_count=len(entry.values),
            joined_at=now,
        )

    def advance(self, now: float) -> tuple[list[JoinedEvent], list[RewardRecord]]:
        """Close every window that ended at or before ``now``.

        Returns
        -------
        joined : list of JoinedEvent
            Events joined now, in deadline order.
        orphans : list of RewardRecord
            Held rewards whose decision never arrived, with status ``orphan``.
        """
        joined: list[JoinedEvent] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, event_id = heapq.heappop(self._deadlines)
            if event_id in self._pending:  # already closed by an earliest reward
                joined.append(self._close(event_id, now))

        orphans: list[RewardRecord] = []
        while self._held_order and self._held_order[0][0] <= now:
            _, event_id = heapq.heappop(self._held_order)
            self._held_activations.pop(event_id, None)
            for reward in self._held_rewards.pop(event_id, []):
                orphans.append(
                    RewardRecord(reward.event_id, reward.policy, reward.timestamp, reward.value,
                                 reward.reward_id, RewardStatus.ORPHAN)
                )
        if orphans:
            self.stats.orphans += len(orphans)
            logger.warning("%d rewards had no decision within %.0f s; stored as orphans (first event id %r)",
                           len(orphans), self.settings.orphan_hold_time, orphans[0].event_id)
        return joined, orphans
