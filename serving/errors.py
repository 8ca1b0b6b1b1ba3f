"""Errors of the server and their gRPC status codes, mapped in one place.

:func:`status_for` is the only function that turns an exception into a gRPC
status. Messages of expected errors go to the client unchanged; unexpected
errors reach the client as ``INTERNAL`` with a short message and an error id
that is also logged with the traceback, never with the traceback itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import grpc

from bandit.errors import (
    BackpressureError,
    CheckpointError,
    ConfigurationError,
    EventLogError,
    InvalidPmfError,
    MicrobanditError,
    UnknownEventError,
)

__all__ = [
    "UnknownPolicyError",
    "MessageTooLargeError",
    "LearnerUnavailableError",
    "AuthenticationError",
    "status_for",
    "MAX_DETAILS_LENGTH",
]

logger = logging.getLogger(__name__)

MAX_DETAILS_LENGTH = 1000
"""Longest status message sent to a client, in characters."""


class UnknownPolicyError(MicrobanditError, KeyError):
    """A request names a policy that is not configured."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class MessageTooLargeError(MicrobanditError):
    """A request message is larger than the configured limit."""


class AuthenticationError(MicrobanditError):
    """A call lacks the configured bearer token or sends a wrong one."""


class LearnerUnavailableError(MicrobanditError):
    """A policy's learner cannot be reached (starting, restarting or stopped)."""


def _ray_unavailable_types() -> tuple[type[BaseException], ...]:
    # Ray is imported lazily so that this module stays importable, and unit
    # testable, without Ray's start-up cost.
    try:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    except ImportError:  # pragma: no cover - ray is a dependency
        return ()
    return (ActorDiedError, ActorUnavailableError, RayActorError)


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the gRPC status code and client message of an exception.

    Parameters
    ----------
    error : BaseException
        The exception raised while serving a request.

    Returns
    -------
    tuple of (grpc.StatusCode, str)
        The code and a message without a traceback, at most
        :data:`MAX_DETAILS_LENGTH` characters.
    """
    code: grpc.StatusCode
    if isinstance(error, AuthenticationError):
        code = grpc.StatusCode.UNAUTHENTICATED
    elif isinstance(error, UnknownPolicyError):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(error, UnknownEventError):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(error, MessageTooLargeError):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
    elif isinstance(error, (BackpressureError, LearnerUnavailableError)):
        code = grpc.StatusCode.UNAVAILABLE
    elif isinstance(error, ConfigurationError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    elif isinstance(error, (TypeError, ValueError)) and not isinstance(error, MicrobanditError):
        code = grpc.StatusCode.INVALID_ARGUMENT
    elif isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the server did not finish the request in time; retry later"
    elif isinstance(error, _ray_unavailable_types()):
        logger.warning("learner unreachable: %s", error)
        return grpc.StatusCode.UNAVAILABLE, "the policy's learner is restarting or stopped; retry later"
    else:
        if isinstance(error, (CheckpointError, EventLogError, InvalidPmfError)):
            summary = f"{type(error).__name__}: the server could not complete the request"
        else:
            summary = "internal error"
        error_id = secrets.token_hex(6)
        logger.error("error %s while serving a request", error_id, exc_info=error)
        return grpc.StatusCode.INTERNAL, f"{summary}; error id {error_id} is in the server log"
    message = str(error) or type(error).__name__
    if len(message) > MAX_DETAILS_LENGTH:
        message = message[: MAX_DETAILS_LENGTH - 15] + "... [truncated]"
    return code, message
