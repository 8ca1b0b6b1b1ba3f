"""Registration of ``microbandit.v1.DecisionService`` with Ray Serve's gRPC servers.

The generated ``add_DecisionServiceServicer_to_server`` registers each
method with the message class's ``FromString`` as request deserializer.
When that raises (a corrupt message, invalid UTF-8 in a string field),
grpcio ends the call with ``UNKNOWN`` and the parser's message before any
of microbandit's code runs. :func:`add_decision_service` registers the same
methods with a deserializer that returns an :class:`UndecodableRequest`
instead, which the decider rejects with ``INVALID_ARGUMENT``
(:meth:`serving.decider.DeciderCore.check_size`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from protos.microbandit.v1 import decision_service_pb2 as pb

__all__ = ["SERVICE_NAME", "SERVICER_FUNCTION", "UndecodableRequest", "add_decision_service"]

SERVICE_NAME = "microbandit.v1.DecisionService"
"""Full name of the gRPC service."""
SERVICER_FUNCTION = "serving._private.grpc_service.add_decision_service"
"""Import path of :func:`add_decision_service`, for Ray Serve's ``grpc_servicer_functions``."""

_METHODS: dict[str, tuple[Any, Any]] = {
    "Choose": (pb.ChooseRequest, pb.ChooseResponse),
    "ChooseBatch": (pb.ChooseBatchRequest, pb.ChooseBatchResponse),
    "Reward": (pb.RewardRequest, pb.RewardResponse),
    "Activate": (pb.ActivateRequest, pb.ActivateResponse),
    "GetPolicy": (pb.GetPolicyRequest, pb.PolicyInfo),
    "ListPolicies": (pb.ListPoliciesRequest, pb.ListPoliciesResponse),
}


class UndecodableRequest:
    """A request whose bytes are not a valid message of the method's request type.

    Parameters
    ----------
    type_name : str
        Full protobuf name of the expected message.
    error : str
        The parser's message.
    size : int
        Length of the received bytes.
    """

    def __init__(self, type_name: str, error: str, size: int) -> None:
        self.type_name = type_name
        self.error = error
        self.size = size

    def ByteSize(self) -> int:  # noqa: N802 - the protobuf message method name
        """Return the length of the received bytes, as a message's ``ByteSize`` would."""
        return self.size


def _tolerant_deserializer(message_class: Any) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return UndecodableRequest(message_class.DESCRIPTOR.full_name, str(error)[:200], len(data))

    return deserialize


def add_decision_service(servicer: Any, server: Any) -> None:
    """Register the DecisionService methods of ``servicer`` on a gRPC server, as the generated function does."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=_tolerant_deserializer(request_class),
            response_serializer=response_class.SerializeToString,
        )
        for name, (request_class, response_class) in _METHODS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
