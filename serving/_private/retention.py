"""The server's retention sweep: delete event-log segments older than ``server.retention_days``.

:class:`RetentionSweeper` runs :func:`bandit.maintenance.apply_retention`
on every policy directory of the data directory. ``microbandit serve``
runs it once at start and then every ``retention_check_interval_seconds``
on a daemon thread of the server process. Retention deletes only complete
segments, which the learners never write again, so it runs beside them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bandit.maintenance import apply_retention, policy_directories

__all__ = ["RetentionSweeper"]

logger = logging.getLogger(__name__)

_SECONDS_PER_DAY = 86_400.0


class RetentionSweeper:
    """Periodic deletion of old event-log segments of a data directory.

    Parameters
    ----------
    data_dir : path
        Server data directory (policies under ``policies/``).
    retention_days : float
        Segments whose newest record is older than this are deleted.
    interval_seconds : float
        Seconds between sweeps of :meth:`start`.
    clock : callable
        Returns the current time in seconds since the Unix epoch.
    """

    def __init__(
        self, data_dir: Path, retention_days: float, interval_seconds: float, clock: Callable[[], float]
    ) -> None:
        if not retention_days > 0:
            raise ValueError(f"retention_days must be > 0, got {retention_days!r}")
        self.data_dir = data_dir
        self.max_age_seconds = retention_days * _SECONDS_PER_DAY
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """Delete the old segments of every policy once; return the number of rows deleted."""
        if not self.data_dir.is_dir():
            return 0
        now = self._clock()
        removed = 0
        for directory in policy_directories(self.data_dir):
            removed += apply_retention(directory, self.max_age_seconds, now)
        if removed:
            logger.info("retention deleted %d rows older than %.0f s in %s", removed, self.max_age_seconds, self.data_dir)
        return removed

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # the next sweep retries, and the traceback is logged
                logger.exception("retention sweep of %s failed", self.data_dir)
            if self._stop.wait(self.interval_seconds):
                return

    def start(self) -> None:
        """Sweep now and then every ``interval_seconds`` on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="microbandit-retention", daemon=True)
        self._thread.start()
        logger.info(
            "retention sweep of %s every %.0f s deletes segments older than %.0f s",
            self.data_dir,
            self.interval_seconds,
            self.max_age_seconds,
        )

    def stop(self) -> None:
        """Stop the thread, waiting for a sweep in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
