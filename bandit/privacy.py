"""Pseudonymization of user identifiers with a keyed hash.

A user id sent with a decision is replaced by ``HMAC-SHA256(key, user_id)``
(hex, first 32 characters) before anything logs it, and it is never a VW
feature. The key comes from a file or an environment variable and is never
logged. Without the key a pseudonym cannot be linked back to a user id.
With it, an operator can find every record of one user for erasure.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Pseudonymizer",
    "keyed_pseudonym",
    "load_pseudonym_key",
    "KEY_ENVIRONMENT_VARIABLE",
    "KEY_FILE_NAME",
    "MIN_KEY_BYTES",
]

logger = logging.getLogger(__name__)

KEY_ENVIRONMENT_VARIABLE = "MICROBANDIT_USER_ID_KEY"
"""Default environment variable holding the pseudonymization key (at least 16 bytes of text)."""
KEY_FILE_NAME = "user_id.key"
"""Name of the random key a server creates in its data directory when no other key is configured."""
MIN_KEY_BYTES = 16
_PSEUDONYM_LENGTH = 32
_MAX_USER_ID_LENGTH = 1024
_GENERATED_KEY_BYTES = 32


def _create_key_file(path: Path) -> None:
    """Write a random key (hexadecimal text, mode 0600) unless the file exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_hex(_GENERATED_KEY_BYTES).encode("ascii"))
        handle.flush()
        os.fsync(handle.fileno())
    logger.info("created a random pseudonymization key in %s", path)


def load_pseudonym_key(
    key_file: str | os.PathLike[str] | None = None,
    env_var: str = KEY_ENVIRONMENT_VARIABLE,
    data_dir: str | os.PathLike[str] | None = None,
    create: bool = False,
) -> bytes:
    """Read the pseudonymization key.

    The first source present wins: ``key_file``, then the environment
    variable ``env_var``, then ``data_dir/user_id.key``. With ``create``, a
    missing ``data_dir/user_id.key`` is created with a random key, so that a
    server's pseudonyms stay stable across restarts.

    Parameters
    ----------
    key_file : path, optional
        File holding the key; surrounding whitespace is ignored.
    env_var : str
        Environment variable holding the key as text.
    data_dir : path, optional
        Server data directory whose ``user_id.key`` is the last resort.
    create : bool
        Create ``data_dir/user_id.key`` when no source is present.

    Raises
    ------
    ValueError
        If no key is found or it is shorter than :data:`MIN_KEY_BYTES`.
        The message never contains the key.
    """
    text = os.environ.get(env_var)
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as error:
            raise ValueError(f"cannot read the pseudonymization key file {key_file}: {error.strerror}") from None
        source = f"key file {key_file}"
    elif text:
        key = text.encode("utf-8")
        source = f"environment variable {env_var}"
    elif data_dir is not None and (create or (Path(data_dir) / KEY_FILE_NAME).exists()):
        path = Path(data_dir) / KEY_FILE_NAME
        if create:
            _create_key_file(path)
        # Read without stripping: the file is the server's own, and its bytes are the key.
        key = path.read_bytes()
        source = f"key file {path}"
    else:
        where = f", configure a key file, or keep {KEY_FILE_NAME} in the data directory" if data_dir else ""
        raise ValueError(f"no pseudonymization key: set {env_var}{where} or pass a key file")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the pseudonymization key from the {source} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def keyed_pseudonym(key: bytes, user_id: str) -> str:
    """Return ``HMAC-SHA256(key, user_id)`` as its first 32 hexadecimal characters.

    Callers check the key and the user id; :class:`Pseudonymizer` does both.
    """
    digest = hmac.new(key, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return digest[:_PSEUDONYM_LENGTH]


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed hash of user ids.

    Parameters
    ----------
    key : bytes
        Secret key, at least :data:`MIN_KEY_BYTES` long. Not shown by ``repr``.
    """

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"pseudonymization key must be at least {MIN_KEY_BYTES} bytes")

    def pseudonymize(self, user_id: str) -> str:
        """Return the pseudonym of ``user_id`` (32 hex characters)."""
        if not isinstance(user_id, str):
            raise TypeError(f"user_id must be a str, got {type(user_id).__name__}")
        if not user_id or len(user_id) > _MAX_USER_ID_LENGTH:
            raise ValueError(f"user_id must have 1 to {_MAX_USER_ID_LENGTH} characters, got {len(user_id)}")
        return keyed_pseudonym(self.key, user_id)
