"""The one mapping from exceptions to gRPC status codes, and the client's reverse mapping."""

from __future__ import annotations

import logging

import grpc
import pytest

from bandit.errors import BackpressureError, CheckpointError, ConfigurationError, EventLogError, UnknownEventError
from serving.client import AuthenticationError as ClientAuthenticationError
from serving.client import (
    ClientError,
    DeadlineExceededError,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    UnavailableError,
    _error_for,
)
from serving.errors import (
    MAX_DETAILS_LENGTH,
    AuthenticationError,
    LearnerUnavailableError,
    MessageTooLargeError,
    UnknownPolicyError,
    status_for,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValueError("actions is empty"), grpc.StatusCode.INVALID_ARGUMENT),
        (TypeError("context must be a mapping"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownPolicyError("policy 'x' is not configured"), grpc.StatusCode.NOT_FOUND),
        (UnknownEventError("event_id 'e' is not known"), grpc.StatusCode.NOT_FOUND),
        (MessageTooLargeError("too big"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (BackpressureError("buffer full"), grpc.StatusCode.UNAVAILABLE),
        (LearnerUnavailableError("restarting"), grpc.StatusCode.UNAVAILABLE),
        (ConfigurationError("bad setting"), grpc.StatusCode.FAILED_PRECONDITION),
        (TimeoutError(), grpc.StatusCode.DEADLINE_EXCEEDED),
        (AuthenticationError("authorization metadata is missing"), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_expected_errors_keep_their_message(error: BaseException, code: grpc.StatusCode) -> None:
    mapped_code, message = status_for(error)
    assert mapped_code == code
    if code is not grpc.StatusCode.DEADLINE_EXCEEDED:
        assert message == str(error)


@pytest.mark.parametrize("error", [RuntimeError("secret path /srv/x"), CheckpointError("corrupt"), EventLogError("disk")])
def test_unexpected_errors_hide_details(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="serving.errors"):
        code, message = status_for(error)
    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in message
    assert "Traceback" not in message
    error_id = message.split("error id ")[1].split()[0]
    assert error_id in caplog.text


def test_long_messages_are_truncated() -> None:
    _, message = status_for(ValueError("x" * 5000))
    assert len(message) == MAX_DETAILS_LENGTH
    assert message.endswith("[truncated]")


class _RpcError(grpc.RpcError):
    """An RpcError with a status, as grpc raises for a failed call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequestError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.UNAUTHENTICATED, ClientAuthenticationError),
        (grpc.StatusCode.INTERNAL, ServerError),
    ],
)
def test_client_maps_status_to_exception(code: grpc.StatusCode, error_type: type[ClientError]) -> None:
    error = _error_for(_RpcError(code, "field x is bad"), "Choose")
    assert isinstance(error, error_type)
    assert error.code == code
    assert str(error) == f"Choose failed with {code.name}: field x is bad"
