"""Bind Ray Serve's gRPC servers to 127.0.0.1 instead of every interface.

Ray Serve 2.60 binds its gRPC proxy, the replicas' direct-ingress gRPC
servers and the replicas' internal gRPC servers to ``[::]`` with no host
option (``ray/serve/_private/grpc_util.py`` and ``replica.py``).
``microbandit serve`` runs a single-node server, so it installs
:func:`bind_loopback` as Ray's ``worker_process_setup_hook``: in every worker
process it wraps the two functions that add those listening addresses and
rewrites ``[::]:PORT`` to ``127.0.0.1:PORT``. With ``server.tls`` it also
adds the proxy and direct-ingress ports with TLS (:mod:`serving._private.tls`);
the replicas' internal gRPC ports, which only Ray calls, stay plain.

NOTE: this patches Ray Serve internals and is checked against Ray 2.60 only
(an integration test asserts the gRPC ports listen on loopback). Ray's core
processes (GCS, raylet, core-worker RPC) still listen on every interface;
Ray's token authentication guards them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from serving._private.tls import server_credentials

__all__ = ["bind_loopback", "loopback_address"]

logger = logging.getLogger(__name__)

_ALL_INTERFACES_PREFIX = "[::]:"


def loopback_address(address: str) -> str:
    """Return ``address`` with an all-interfaces host replaced by 127.0.0.1."""
    if address.startswith(_ALL_INTERFACES_PREFIX):
        return "127.0.0.1:" + address[len(_ALL_INTERFACES_PREFIX) :]
    return address


def _wrap(function: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    if getattr(function, "_microbandit_loopback", False):
        return function

    def add_loopback_address(server: Any, address: str) -> Any:
        return function(server, loopback_address(address))

    add_loopback_address._microbandit_loopback = True  # type: ignore[attr-defined]
    return add_loopback_address


def _wrap_ingress(function: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """Wrap Ray Serve's ``add_grpc_address``: loopback, and TLS when configured."""
    if getattr(function, "_microbandit_loopback", False):
        return function

    def add_ingress_address(server: Any, address: str) -> Any:
        credentials = server_credentials()
        if credentials is None:
            return function(server, loopback_address(address))
        logger.info("gRPC ingress port %s uses TLS", loopback_address(address))
        return server.add_secure_port(loopback_address(address), credentials)

    add_ingress_address._microbandit_loopback = True  # type: ignore[attr-defined]
    return add_ingress_address


def bind_loopback() -> None:
    """Patch Ray Serve in this process so its gRPC servers listen on 127.0.0.1 only.

    Also sends the INFO records of the ``serving`` and ``bandit`` loggers to
    the worker's stderr, which Ray writes to its log directory and forwards
    to the driver.
    """
    for name in ("serving", "bandit"):
        package_logger = logging.getLogger(name)
        if not package_logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            package_logger.addHandler(handler)
            package_logger.setLevel(logging.INFO)
            package_logger.propagate = False
    from ray.serve._private import default_impl, replica

    default_impl.add_grpc_address = _wrap_ingress(default_impl.add_grpc_address)
    replica.add_port_to_grpc_server = _wrap(replica.add_port_to_grpc_server)
