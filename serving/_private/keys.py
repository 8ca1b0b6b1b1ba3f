"""Secrets of the server: the user-id pseudonymization key and the bearer token."""

from __future__ import annotations

import os
import secrets

from bandit.errors import ConfigurationError
from serving.config import MicrobanditConfig

__all__ = ["load_user_id_key", "load_auth_token"]

_KEY_BYTES = 32


def load_user_id_key(config: MicrobanditConfig) -> bytes:
    """Return the user-id pseudonymization key.

    The key is the value of the environment variable named by
    ``server.user_id_key_env`` when it is set. Otherwise it is a random key
    created once in the data directory (``user_id.key``, mode 0600), so
    pseudonyms stay stable across restarts.
    """
    from_env = os.environ.get(config.server.user_id_key_env)
    if from_env:
        return from_env.encode("utf-8")
    path = config.data_path() / "user_id.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(_KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())
    return path.read_bytes()


def load_auth_token(config: MicrobanditConfig) -> str | None:
    """Return the bearer token from the environment variable ``server.auth_token_env``, or None.

    Raises
    ------
    ConfigurationError
        If the variable is configured but unset or empty, so that a server
        meant to require a token never starts without one.
    """
    name = config.server.auth_token_env
    if name is None:
        return None
    token = os.environ.get(name, "")
    if not token:
        raise ConfigurationError(f"server.auth_token_env names {name}, but that environment variable is unset or empty")
    return token
