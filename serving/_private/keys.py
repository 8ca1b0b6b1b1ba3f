"""Secrets of the server: the user-id pseudonymization key and the bearer token."""

from __future__ import annotations

import os

from bandit.errors import ConfigurationError
from bandit.privacy import load_pseudonym_key
from serving.config import MicrobanditConfig

__all__ = ["load_user_id_key", "load_auth_token"]


def load_user_id_key(config: MicrobanditConfig) -> bytes:
    """Return the user-id pseudonymization key of a server.

    The first source present wins: the file ``server.user_id_key_file``,
    the environment variable named by ``server.user_id_key_env``, then a
    random key created once in the data directory (``user_id.key``, mode
    0600), so pseudonyms stay stable across restarts.

    Raises
    ------
    ConfigurationError
        If the key file cannot be read or a key is shorter than 16 bytes.
    """
    server = config.server
    try:
        return load_pseudonym_key(server.user_id_key_file, server.user_id_key_env, config.data_path(), create=True)
    except ValueError as error:
        field = "server.user_id_key_file" if server.user_id_key_file else "server.user_id_key_env"
        raise ConfigurationError(f"{field}: {error}") from None


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
