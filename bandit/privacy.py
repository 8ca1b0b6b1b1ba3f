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
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Pseudonymizer", "load_pseudonym_key", "KEY_ENVIRONMENT_VARIABLE", "MIN_KEY_BYTES"]

logger = logging.getLogger(__name__)

KEY_ENVIRONMENT_VARIABLE = "MICROBANDIT_PSEUDONYM_KEY"
"""Environment variable holding the pseudonymization key (at least 16 bytes of text)."""
MIN_KEY_BYTES = 16
_PSEUDONYM_LENGTH = 32
_MAX_USER_ID_LENGTH = 1024


def load_pseudonym_key(key_file: str | os.PathLike[str] | None = None) -> bytes:
    """Read the pseudonymization key from ``key_file`` or the environment.

    Raises
    ------
    ValueError
        If no key is configured or it is shorter than :data:`MIN_KEY_BYTES`.
        The message never contains the key.
    """
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as error:
            raise ValueError(f"cannot read the pseudonymization key file {key_file}: {error.strerror}") from None
        source = f"key file {key_file}"
    else:
        text = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
        if text is None:
            raise ValueError(
                f"no pseudonymization key: set {KEY_ENVIRONMENT_VARIABLE} or configure a key file"
            )
        key = text.encode("utf-8")
        source = f"environment variable {KEY_ENVIRONMENT_VARIABLE}"
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the pseudonymization key from the {source} is shorter than {MIN_KEY_BYTES} bytes")
    return key


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
        digest = hmac.new(self.key, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return digest[:_PSEUDONYM_LENGTH]
