"""Exception hierarchy of the decision loop.

Wrong types raise ``TypeError`` and wrong values raise ``ValueError``; the
classes here are for broken contracts and state. The server maps each class to
one gRPC status code in one place.
"""

from __future__ import annotations

__all__ = [
    "MicrobanditError",
    "ConfigurationError",
    "InvalidPmfError",
    "CheckpointError",
    "UnknownEventError",
    "BackpressureError",
    "EventLogError",
    "DataDirectoryInUseError",
]


class MicrobanditError(Exception):
    """Base class of the project's own errors."""


class ConfigurationError(MicrobanditError, ValueError):
    """A policy or server setting is invalid or inconsistent."""


class InvalidPmfError(MicrobanditError):
    """A probability mass function failed validation; it is never logged or returned."""


class CheckpointError(MicrobanditError):
    """A checkpoint is missing, corrupt or incompatible with the settings."""


class UnknownEventError(MicrobanditError, KeyError):
    """An event id is not known to the loop."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class BackpressureError(MicrobanditError):
    """A bounded buffer is full; the caller should retry later or slow down."""


class EventLogError(MicrobanditError):
    """The event log could not be written or read."""


class DataDirectoryInUseError(MicrobanditError):
    """A running server holds the data directory that an offline tool would change."""
