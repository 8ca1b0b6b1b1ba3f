"""The learner: the single writer of one policy's model and event log.

It logs decisions, rewards and activations, joins them, learns from each
joined event, and checkpoints. Its checkpoint covers exactly the joined
events already flushed to the log, so after a restart it restores the
checkpoint, learns the joined events logged after it, and rebuilds the
pending join state from the decisions, rewards and activations that were
logged but not joined yet. No learned reward is lost by a clean stop; a
crash loses at most what was buffered and not yet flushed.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from bandit.errors import CheckpointError
from bandit.eventlog import EventLog, read_records
from bandit.events import (
    ActivationRecord,
    DecisionRecord,
    JoinedEvent,
    LearningMode,
    RewardRecord,
    RewardStatus,
)
from bandit.join import RewardJoiner
from bandit.policy import Policy
from bandit.settings import PolicySettings

__all__ = ["Learner", "LearnerStats", "CHECKPOINT_NAME", "check_reward_value"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.mbk"
"""File name of a policy's latest checkpoint inside its data directory."""


@dataclass(frozen=True)
class LearnerStats:
    """A snapshot of a learner's counters."""

    policy: str
    model_version: int
    examples_learned: int
    decisions: int
    rewards: int
    late_rewards: int
    duplicate_rewards: int
    orphan_rewards: int
    pending: int
    last_update: float | None
    apprentice_match_rate: float | None


class Learner:
    """Single writer of one policy.

    Parameters
    ----------
    settings : PolicySettings
        The policy's settings.
    data_dir : str or os.PathLike or None
        Directory for the policy's event log (``events/``) and checkpoint.
        ``None`` keeps everything in memory.
    restore : bool
        Restore from ``data_dir`` when it contains a checkpoint or a log.
    """

    def __init__(
        self,
        settings: PolicySettings,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        restore: bool = True,
    ) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.joiner = RewardJoiner(settings.join)
        self.log = EventLog(self.data_dir / "events") if self.data_dir is not None else None
        self.policy = Policy(settings)
        self.last_update: float | None = None
        self._published_examples = 0
        self._apprentice_checked = 0
        self._apprentice_matched = 0
        if restore and self.data_dir is not None:
            assert self.log is not None
            self.log.merge_trailing()
            self._restore()

    # -- restart --------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        """Path of the latest checkpoint, or None without a data directory."""
        return self.data_dir / CHECKPOINT_NAME if self.data_dir is not None else None

    def _restore(self) -> None:
        assert self.data_dir is not None and self.log is not None
        path = self.checkpoint_path
        assert path is not None
        if path.exists():
            self.policy.close()
            self.policy = Policy.load(path, self.settings)
        records = read_records(self.log.directory)
        if not records and not path.exists():
            return
        joined_ids: set[str] = set()
        learnable_seen = 0
        replayed = 0
        for record in records:
            if not isinstance(record, JoinedEvent):
                continue
            joined_ids.add(record.decision.event_id)
            if record.learnable and self.settings.learning_mode is not LearningMode.LOGGING_ONLY:
                learnable_seen += 1
                if learnable_seen > self.policy.examples_learned:
                    self.policy.learn(record)
                    replayed += 1
        if learnable_seen < self.policy.examples_learned:
            raise CheckpointError(
                f"checkpoint of policy {self.settings.name!r} has learned {self.policy.examples_learned} examples "
                f"but the event log holds only {learnable_seen} learnable joined events"
            )
        # Joined events stay known, so that a decision a decider sends again
        # after a learner crash is not recorded twice.
        reward_ids: dict[str, set[str]] = {}
        for record in records:
            if isinstance(record, RewardRecord) and record.reward_id is not None:
                reward_ids.setdefault(record.event_id, set()).add(record.reward_id)
        for record in records:
            if isinstance(record, JoinedEvent):
                event_id = record.decision.event_id
                self.joiner.restore_closed(event_id, reward_ids.get(event_id, set()))
        # Rebuild the join state of decisions logged but not joined yet.
        for record in records:
            if isinstance(record, DecisionRecord) and record.event_id not in joined_ids:
                self.joiner.add_decision(record)
            elif isinstance(record, RewardRecord) and record.event_id not in joined_ids:
                if record.status in (RewardStatus.ACCEPTED, RewardStatus.PENDING_DECISION):
                    self.joiner.add_reward(record)
            elif isinstance(record, ActivationRecord) and record.event_id not in joined_ids:
                self.joiner.activate(record.event_id, record.timestamp)
        # Versions published after the checkpoint are not in it, but every
        # decision logs the version it used: continue after the newest one.
        # A restart with anything logged always starts a new version, which
        # also keeps event ids generated from the version unique.
        newest_logged = max((r.model_version for r in records if isinstance(r, DecisionRecord)), default=0)
        self.policy.model_version = max(self.policy.model_version, newest_logged) + 1
        self._published_examples = self.policy.examples_learned
        logger.info(
            "restored policy %r: model version %d, %d examples learned (%d replayed from the log), %d pending",
            self.settings.name,
            self.policy.model_version,
            self.policy.examples_learned,
            replayed,
            self.joiner.pending_count,
        )

    # -- ingest ---------------------------------------------------------------

    def record_decision(self, decision: DecisionRecord) -> list[JoinedEvent]:
        """Log a decision and start its reward window; learn from events joined at once."""
        joined = self.joiner.add_decision(decision)
        if self.log is not None:
            self.log.append(decision)
        self._learn_all(joined)
        return joined

    def record_reward(self, reward: RewardRecord) -> RewardStatus:
        """Log a reward with its join status; learn if it closed an event."""
        status, joined = self.joiner.add_reward(reward)
        if self.log is not None:
            self.log.append(
                RewardRecord(reward.event_id, reward.policy, reward.timestamp, reward.value, reward.reward_id, status)
            )
        self._learn_all(joined)
        return status

    def record_activation(self, event_id: str, timestamp: float) -> str:
        """Log an activation; return its :class:`~bandit.join.ActivationStatus` value."""
        status, joined = self.joiner.activate(event_id, timestamp)
        if self.log is not None:
            self.log.append(ActivationRecord(event_id, self.settings.name, timestamp))
        self._learn_all(joined)
        return status

    def advance(self, now: float) -> list[JoinedEvent]:
        """Close windows ended by ``now``, log and learn the joined events."""
        joined, orphans = self.joiner.advance(now)
        if self.log is not None:
            self.log.extend(orphans)
        self._learn_all(joined)
        return joined

    def _learn_all(self, joined: list[JoinedEvent]) -> None:
        if not joined:
            return
        mode = self.settings.learning_mode
        for event in joined:
            if self.log is not None:
                self.log.append(event)
            if mode is LearningMode.LOGGING_ONLY or not event.learnable:
                continue
            if mode is LearningMode.APPRENTICE:
                self._check_apprentice(event)
            self.policy.learn(event)
            self.last_update = event.joined_at

    def _check_apprentice(self, event: JoinedEvent) -> None:
        decision = event.decision
        eligible = decision.eligible_actions
        pmf = self.policy.predict_trusted(decision.context, eligible)
        best = max(range(len(pmf)), key=pmf.__getitem__)
        self._apprentice_checked += 1
        self._apprentice_matched += int(eligible[best].id == decision.chosen_action)

    # -- output ---------------------------------------------------------------

    def flush(self) -> None:
        """Make every buffered record durable in the event log."""
        if self.log is not None:
            self.log.flush()

    def publish(self) -> int:
        """Start a new model version if anything was learned since the last one; return the version."""
        if self.policy.examples_learned != self._published_examples:
            self.policy.model_version += 1
            self._published_examples = self.policy.examples_learned
        return self.policy.model_version

    def checkpoint(self) -> Path | None:
        """Flush the log, publish, and save the checkpoint atomically; return its path."""
        self.flush()
        self.publish()
        path = self.checkpoint_path
        if path is None:
            return None
        self.policy.save(path)
        logger.info(
            "checkpointed policy %r at model version %d (%d examples)",
            self.settings.name,
            self.policy.model_version,
            self.policy.examples_learned,
        )
        return path

    @property
    def apprentice_match_rate(self) -> float | None:
        """Share of learned apprentice events where the model's best action matched the baseline."""
        if self._apprentice_checked == 0:
            return None
        return self._apprentice_matched / self._apprentice_checked

    def stats(self) -> LearnerStats:
        """Return the learner's counters."""
        join = self.joiner.stats
        return LearnerStats(
            policy=self.settings.name,
            model_version=self.policy.model_version,
            examples_learned=self.policy.examples_learned,
            decisions=join.decisions,
            rewards=join.rewards,
            late_rewards=join.late,
            duplicate_rewards=join.duplicates,
            orphan_rewards=join.orphans,
            pending=self.joiner.pending_count,
            last_update=self.last_update,
            apprentice_match_rate=self.apprentice_match_rate,
        )

    def close(self) -> None:
        """Flush the log and release the model."""
        self.flush()
        self.policy.close()


def check_reward_value(value: float, settings: PolicySettings) -> float:
    """Validate a reward value: finite and inside the policy's reward range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"reward value must be a number, got {type(value).__name__}")
    value = float(value)
    low, high = settings.reward_range
    if not math.isfinite(value):
        raise ValueError(f"reward value must be finite, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"reward value {value!r} is outside the policy's reward_range [{low}, {high}]")
    return value

