"""The learner side of one policy, without Ray: ingest, timers and model publication.

:class:`LearnerService` wraps :class:`bandit.learner.Learner`, the single
writer of a policy's model and event log, and adds what the server needs.
Decision records arrive in batches from several deciders, and a repeated
event id keeps the first. A periodic :meth:`LearnerService.tick` closes
reward windows, flushes the log, publishes model versions and checkpoints.
The checkpoint bytes of the newest published model wait for the deciders.
The Ray actor in :mod:`serving.app` is a thin wrapper that also makes each
Reward and Activate durable before it answers; unit tests drive this class
with a fake clock.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bandit.errors import BackpressureError
from bandit.events import DecisionRecord, RewardRecord, RewardStatus
from bandit.learner import Learner
from serving.config import PolicyConfig, ServerConfig

__all__ = ["LearnerService", "PublishedModel", "UNKNOWN_EVENT", "VERSION_FILE_NAME", "policy_data_dir"]

logger = logging.getLogger(__name__)


VERSION_FILE_NAME = "published_version"
"""File in a policy's data directory with the newest model version published to the deciders."""

UNKNOWN_EVENT = "unknown_event"
"""Activation status returned for an event id the learner has never seen."""


def policy_data_dir(data_dir: str | os.PathLike[str], policy: str) -> Path:
    """Return the directory of one policy's event log and checkpoint."""
    return Path(data_dir) / "policies" / policy


@dataclass(frozen=True)
class PublishedModel:
    """The newest model version offered to the deciders."""

    version: int
    checkpoint: bytes
    published_at: float


class LearnerService:
    """Single writer of one policy, with the server's timers.

    Parameters
    ----------
    policy : PolicyConfig
        The policy's configuration section.
    server : ServerConfig
        Server settings (checkpoint interval, data directory).
    clock : callable
        Returns the current time in seconds since the Unix epoch.
    """

    def __init__(self, policy: PolicyConfig, server: ServerConfig, clock: Callable[[], float]) -> None:
        self.config = policy
        self.settings = policy.build()
        self._clock = clock
        self._checkpoint_interval = server.checkpoint_interval_seconds
        self._log_flush_interval = min(server.checkpoint_interval_seconds, server.log_sync_interval_seconds)
        directory = policy_data_dir(server.data_dir, policy.name)
        self.learner = Learner(self.settings, directory)
        self._version_path = directory / VERSION_FILE_NAME
        self._continue_after_published_version()
        now = clock()
        self._last_publish = now
        self._last_checkpoint = now
        self._last_flush = now
        self.duplicate_decisions = 0
        self.conflicting_decisions = 0
        self.dropped_decisions = 0
        self.published = PublishedModel(
            self.learner.policy.model_version, self.learner.policy.to_checkpoint(), self.learner.last_update or 0.0
        )
        self._record_published_version(self.published.version)

    def _continue_after_published_version(self) -> None:
        # After a crash the checkpoint and the flushed log can be older than
        # the newest version the deciders received, so restoring would reuse
        # version numbers for different models. The version file records
        # every publication, and the restored model starts after it.
        try:
            newest = int(self._version_path.read_text().strip())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable %s: %s", self._version_path, error)
            return
        if newest >= self.learner.policy.model_version:
            logger.info(
                "policy %r continues at model version %d after published version %d",
                self.settings.name,
                newest + 1,
                newest,
            )
            self.learner.policy.model_version = newest + 1

    def _record_published_version(self, version: int) -> None:
        temporary = self._version_path.with_name(f".{self._version_path.name}.tmp")
        with open(temporary, "w") as handle:
            handle.write(f"{version}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._version_path)

    # -- ingest ---------------------------------------------------------------

    def submit_decisions(self, records: Sequence[DecisionRecord]) -> int:
        """Record decisions from a decider; return how many were new.

        A decision whose event id was already recorded (a repeated event id
        decided again by another replica) is dropped and counted, so the log
        keeps the first. A decision rejected because ``join.max_pending`` is
        reached is dropped and logged.
        """
        accepted = 0
        joiner = self.learner.joiner
        for record in records:
            event_id = record.event_id
            if joiner.is_pending(event_id) or joiner.is_closed(event_id):
                self.duplicate_decisions += 1
                logged = joiner.pending_decision(event_id)
                if logged is not None and logged.chosen_action != record.chosen_action:
                    # A repeated event id reached a replica that no longer
                    # remembered it (another replica, or after a restart) and
                    # was decided differently; rewards apply to the logged one.
                    self.conflicting_decisions += 1
                    logger.warning(
                        "policy %r: event id %r was decided again with action %r, but the logged decision chose %r "
                        "(%d such conflicts since start)",
                        self.settings.name,
                        event_id,
                        record.chosen_action,
                        logged.chosen_action,
                        self.conflicting_decisions,
                    )
                continue
            try:
                self.learner.record_decision(record)
            except BackpressureError as error:
                self.dropped_decisions += 1
                logger.error("policy %r dropped decision %r: %s", self.settings.name, event_id, error)
                continue
            accepted += 1
        return accepted

    def reward(self, event_id: str, value: float, reward_id: str | None, timestamp: float) -> RewardStatus:
        """Record a reward (validated by the decider) and return its status."""
        record = RewardRecord(event_id, self.settings.name, timestamp, value, reward_id)
        return self.learner.record_reward(record)

    def knows(self, event_id: str) -> bool:
        """Return whether a decision with this event id is pending or was joined recently."""
        joiner = self.learner.joiner
        return joiner.is_pending(event_id) or joiner.is_closed(event_id)

    def activate(self, event_id: str, timestamp: float) -> str:
        """Activate a deferred decision; return a :class:`~bandit.join.ActivationStatus` value or :data:`UNKNOWN_EVENT`.

        An unknown event id changes nothing: it is neither logged nor held.
        """
        if not self.knows(event_id):
            return UNKNOWN_EVENT
        status = self.learner.record_activation(event_id, timestamp)
        return status

    # -- timers -----------------------------------------------------------------

    def flush_due(self) -> bool:
        """Return whether records are buffered and the log-sync interval has passed since the last flush."""
        log = self.learner.log
        return log is not None and log.buffered > 0 and self._clock() - self._last_flush >= self._log_flush_interval

    def mark_flushed(self) -> None:
        """Restart the log-sync interval after a flush made outside :meth:`tick`."""
        self._last_flush = self._clock()

    def tick(self) -> bool:
        """Close ended reward windows and run the due flush, publication and checkpoint.

        The flush and the checkpoint write to the event log synchronously, so
        the caller must not have a segment batch in flight
        (:meth:`bandit.eventlog.EventLog.take_batch`).

        Returns
        -------
        bool
            Whether a new model version was published.
        """
        now = self._clock()
        self.learner.advance(now)
        version = self.published.version
        if now - self._last_checkpoint >= self._checkpoint_interval:
            self.checkpoint()
        elif now - self._last_publish >= self.config.model_update_interval_seconds:
            self._last_publish = now
            self.learner.publish()
            self._refresh_published(now)
        if now - self._last_flush >= self._log_flush_interval:
            self.learner.flush()
            self._last_flush = now
        return self.published.version != version

    def _refresh_published(self, now: float) -> None:
        version = self.learner.policy.model_version
        if version == self.published.version:
            return
        self._record_published_version(version)
        self.published = PublishedModel(version, self.learner.policy.to_checkpoint(), now)
        logger.info(
            "policy %r published model version %d (%d examples)",
            self.settings.name,
            version,
            self.learner.policy.examples_learned,
        )

    def checkpoint(self) -> None:
        """Flush the log and write a checkpoint now."""
        now = self._clock()
        self.learner.checkpoint()
        self._last_checkpoint = now
        self._last_flush = now
        self._last_publish = now
        self._refresh_published(now)

    def latest_model(self, known_version: int) -> PublishedModel | None:
        """Return the newest published model, or None when ``known_version`` is already it."""
        if known_version == self.published.version:
            return None
        return self.published

    # -- state --------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """Return the counters reported by GetPolicy."""
        stats = self.learner.stats()
        match_rate = stats.apprentice_match_rate
        return {
            "name": self.settings.name,
            "settings_json": self.config.settings_json(),
            "vw_args": self.settings.vw_command(),
            "learning_mode": self.settings.learning_mode.value,
            "model_version": self.published.version,
            "examples_learned": stats.examples_learned,
            "decisions": stats.decisions,
            "rewards": stats.rewards,
            "last_model_update": self.published.published_at if self.published.version > 0 else 0.0,
            "apprentice_match_rate": match_rate if match_rate is not None else math.nan,
            "pending": stats.pending,
            "model_update_interval": self.config.model_update_interval_seconds,
            "duplicate_decisions": self.duplicate_decisions,
            "dropped_decisions": self.dropped_decisions,
            "conflicting_decisions": self.conflicting_decisions,
        }

    def close(self) -> None:
        """Write the final checkpoint and release the model."""
        self.checkpoint()
        self.learner.close()
        logger.info("policy %r learner closed at model version %d", self.settings.name, self.published.version)

