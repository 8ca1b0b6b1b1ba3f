"""TLS for the gRPC ingress ports of Ray Serve.

Ray Serve 2.60 adds its gRPC proxy port and the replicas' direct-ingress
ports with ``add_insecure_port`` (``ray/serve/_private/default_impl.py``,
``add_grpc_address``) and has no TLS option for them. ``microbandit serve``
passes the certificate and key files of ``server.tls`` to every Ray worker
in two environment variables; the worker set-up hook
(:func:`serving._private.loopback.bind_loopback`) then adds those ports with
``add_secure_port`` and these credentials instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

__all__ = ["TLS_CERT_ENV", "TLS_KEY_ENV", "server_credentials", "tls_environment"]

TLS_CERT_ENV = "MICROBANDIT_TLS_CERT_FILE"
"""Environment variable with the path of the PEM certificate chain of the gRPC ports."""
TLS_KEY_ENV = "MICROBANDIT_TLS_KEY_FILE"
"""Environment variable with the path of the PEM private key of the gRPC ports."""


def tls_environment(cert_file: str | None, key_file: str | None) -> dict[str, str]:
    """Return the environment variables that turn TLS on in Ray workers (empty values turn it off)."""
    return {TLS_CERT_ENV: cert_file or "", TLS_KEY_ENV: key_file or ""}


def server_credentials() -> grpc.ServerCredentials | None:
    """Return TLS credentials from the environment, or None when TLS is off.

    Raises
    ------
    RuntimeError
        If only one of the two variables is set, or a file cannot be read,
        so that a port meant to use TLS never opens without it.
    """
    cert_file = os.environ.get(TLS_CERT_ENV, "")
    key_file = os.environ.get(TLS_KEY_ENV, "")
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise RuntimeError(f"TLS needs both {TLS_CERT_ENV} and {TLS_KEY_ENV}; only one is set")
    certificate = Path(cert_file).read_bytes()
    key = Path(key_file).read_bytes()
    return grpc.ssl_server_credentials([(key, certificate)])
