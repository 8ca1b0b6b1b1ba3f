"""Contexts, actions and their encoding to Vowpal Wabbit's text format.

A context is a mapping of namespace name to features; a feature maps a name to
a string (categorical), a finite number or a boolean. An action is an opaque
string id plus its own feature namespaces. :class:`Encoder` turns both into
VW's multi-line action-dependent-features (ADF) example: one ``shared`` line
followed by one line per action.

Injection safety: namespace names are restricted to ``[A-Za-z0-9_]`` and
validated; feature names and string values are percent-encoded so that only
``[A-Za-z0-9_.]`` and ``%`` appear in a token, so ``|``, ``:``, spaces, tabs,
newlines and a leading ``-`` can never reach VW's parser. The token for a
string feature is ``name=value``, for a boolean ``name!1`` or ``name!0`` and
for a number ``name:value``. The separators ``=``, ``!`` and ``:`` are always
escaped inside names and values, so the encoding is injective: two different
inputs never produce the same example text.

Interactions are configured over namespace *names*: ``context.device`` or
``context.*`` (every context namespace), and likewise ``action.NAME`` and
``action.*``. VW groups interactions by the first character of a namespace,
so each namespace named in an interaction gets a letter of its own, and every
other context (action) namespace shares the letter ``c`` (``a``). The full
namespace string still seeds feature hashing, so namespaces that share a
letter never share features.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from types import MappingProxyType
from typing import TypeAlias

__all__ = [
    "FeatureValue",
    "Namespaces",
    "Action",
    "NamespaceLayout",
    "Encoder",
    "validate_namespaces",
    "validate_actions",
    "escape_token",
    "unescape_token",
    "MAX_NAME_LENGTH",
]

FeatureValue: TypeAlias = str | float | int | bool
Namespaces: TypeAlias = Mapping[str, Mapping[str, FeatureValue]]

MAX_NAME_LENGTH = 256
"""Maximum length in characters of a feature name, string value or action id."""

_NAMESPACE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_FLOAT32_MIN_NORMAL = 1.1754943508222875e-38
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.]*")
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")
_CONTEXT_LETTER = "c"
_ACTION_LETTER = "a"
# Letters handed to namespaces named in an interaction, in order of first use.
_LETTER_POOL = [ch for ch in "BDEFGHIJKLMNOPQRSTUVWXYZbdefghijklmnopqrstuvwxyz"]


def _label_number(value: float) -> str:
    """Format a cost or probability for a VW label.

    VW 9.11's label parser returns NaN for a number with a fraction and an
    exponent below about -127 (``0:1.5e-209:0.5`` made weights NaN),
    so magnitudes below float32's smallest normal number, which VW would
    store as 0 or a subnormal anyway, are written as 0.0. ``float()``
    comes first because the repr of a NumPy scalar is not a VW number.
    """
    number = float(value)
    if abs(number) < _FLOAT32_MIN_NORMAL:
        number = 0.0
    return repr(number)


def escape_token(text: str) -> str:
    """Percent-encode ``text`` so only ``[A-Za-z0-9_.%]`` remain.

    Parameters
    ----------
    text : str
        Any Unicode string, including the empty string.

    Returns
    -------
    str
        The UTF-8 bytes of ``text``; each byte outside ``[A-Za-z0-9_.]`` is
        written as ``%XX`` (upper-case hex).
    """
    if _SAFE_TEXT.fullmatch(text):
        return text
    return _escape_unsafe(text)


@lru_cache(maxsize=65_536)
def _escape_unsafe(text: str) -> str:
    out: list[str] = []
    for byte in text.encode("utf-8", errors="surrogatepass"):
        if byte in _SAFE_BYTES:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def unescape_token(token: str) -> str:
    """Invert :func:`escape_token`."""
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "%":
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(token[i]))
            i += 1
    return raw.decode("utf-8", errors="surrogatepass")


@dataclass(frozen=True, slots=True)
class Action:
    """A candidate action: an opaque id and its feature namespaces.

    Parameters
    ----------
    id : str
        Identifier chosen by the caller, 1 to ``MAX_NAME_LENGTH`` characters.
    features : Mapping[str, Mapping[str, FeatureValue]]
        Namespaces of action features, validated like a context.
    """

    id: str
    features: Namespaces
    key: str = field(init=False, repr=False, compare=False)
    """Canonical JSON of id and features; identifies the action in caches."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise TypeError(f"action id must be a str, got {type(self.id).__name__}")
        if not self.id or len(self.id) > MAX_NAME_LENGTH:
            raise ValueError(
                f"action id must have 1 to {MAX_NAME_LENGTH} characters, got {len(self.id)}: {self.id[:40]!r}"
            )
        object.__setattr__(self, "features", validate_namespaces(self.features, f"action[{self.id!r}]"))
        object.__setattr__(self, "key", json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")))

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready ``{"id": ..., "features": ...}`` mapping."""
        return {"id": self.id, "features": {ns: dict(f) for ns, f in self.features.items()}}


def _check_feature_value(where: str, value: object) -> FeatureValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"feature {where} must be a finite number, got {value!r}")
        return number
    if isinstance(value, str):
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"the value of feature {where} is longer than {MAX_NAME_LENGTH} characters ({len(value)})")
        return value
    raise TypeError(f"feature {where} must be a str, number or bool, got {type(value).__name__}")


def _check_features(owner: str, ns_name: str, features: object) -> dict[str, FeatureValue]:
    if not isinstance(features, Mapping):
        raise TypeError(f"{owner}.{ns_name} must be a mapping of feature name to value")
    clean: dict[str, FeatureValue] = {}
    for name, value in features.items():
        kind = type(value)
        # Fast path for the common well-formed cases; anything else goes
        # through the full checks, which name the offending feature.
        if type(name) is str and len(name) <= MAX_NAME_LENGTH:
            if kind is str and len(value) <= MAX_NAME_LENGTH:  # type: ignore[arg-type]
                clean[name] = value  # type: ignore[assignment]
                continue
            if kind is float and value - value == 0.0:  # type: ignore[operator]  # finite floats only
                clean[name] = value  # type: ignore[assignment]
                continue
            if kind is bool:
                clean[name] = value  # type: ignore[assignment]
                continue
        if not isinstance(name, str):
            raise TypeError(f"{owner}.{ns_name} feature name must be a str, got {type(name).__name__}")
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"{owner}.{ns_name} feature name is longer than {MAX_NAME_LENGTH} characters")
        clean[name] = _check_feature_value(f"{owner}.{ns_name}[{name[:70]!r}]", value)
    return clean


def validate_namespaces(namespaces: object, owner: str = "context") -> Mapping[str, Mapping[str, FeatureValue]]:
    """Validate feature namespaces into a read-only mapping.

    Parameters
    ----------
    namespaces : Mapping[str, Mapping[str, FeatureValue]]
        Namespace name to feature name to value.
    owner : str
        How error messages name the mapping, for example ``"context"``.

    Returns
    -------
    Mapping[str, Mapping[str, FeatureValue]]
        A read-only copy; integers are converted to float.

    Raises
    ------
    TypeError
        If a container, name or value has the wrong type.
    ValueError
        If a namespace name is not ``[A-Za-z0-9_]{1,64}``, a name is too long,
        or a number is NaN or infinite. The message names the feature.
    """
    if not isinstance(namespaces, Mapping):
        raise TypeError(f"{owner} must be a mapping of namespace to features, got {type(namespaces).__name__}")
    checked: dict[str, Mapping[str, FeatureValue]] = {}
    for ns_name, features in namespaces.items():
        if not isinstance(ns_name, str):
            raise TypeError(f"{owner} namespace name must be a str, got {type(ns_name).__name__}")
        if not _NAMESPACE_NAME.fullmatch(ns_name):
            raise ValueError(
                f"{owner} namespace name {ns_name[:70]!r} is invalid: use 1 to 64 characters from [A-Za-z0-9_]"
            )
        checked[ns_name] = MappingProxyType(_check_features(owner, ns_name, features))
    return MappingProxyType(checked)


def validate_actions(actions: Iterable[Action], max_actions: int | None = None) -> tuple[Action, ...]:
    """Check a candidate action list: not empty, unique ids, within the limit."""
    result = tuple(actions)
    if not result:
        raise ValueError("actions must contain at least one action, got none")
    if max_actions is not None and len(result) > max_actions:
        raise ValueError(f"actions has {len(result)} entries, more than the limit of {max_actions}")
    for action in result:
        if type(action) is not Action:
            raise TypeError(f"actions must be Action instances, got {type(action).__name__}")
    ids = [action.id for action in result]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for action_id in ids:
            if action_id in seen:
                raise ValueError(f"actions contains the id {action_id!r} more than once")
            seen.add(action_id)
    return result


def _parse_interaction_term(term: str) -> tuple[str, str | None]:
    side, _, name = term.partition(".")
    if side not in ("context", "action") or not name:
        raise ValueError(f"interaction term {term!r} is invalid: use context.NAME, context.*, action.NAME or action.*")
    if name == "*":
        return side, None
    if not _NAMESPACE_NAME.fullmatch(name):
        raise ValueError(f"interaction term {term!r} names an invalid namespace: use [A-Za-z0-9_]{{1,64}}")
    return side, name


@dataclass(frozen=True)
class NamespaceLayout:
    """Mapping from namespace names to the VW namespace letters used for interactions.

    Parameters
    ----------
    interactions : Sequence[Sequence[str]]
        Each entry is a group of two or more terms (``context.NAME``,
        ``context.*``, ``action.NAME``, ``action.*``) whose features are
        crossed.
    """

    interactions: tuple[tuple[str, ...], ...] = (("context.*", "action.*"),)

    def __post_init__(self) -> None:
        groups = tuple(tuple(group) for group in self.interactions)
        letters: dict[tuple[str, str], str] = {}
        for group in groups:
            if len(group) < 2:
                raise ValueError(f"interaction {list(group)} must name at least two terms")
            for term in group:
                side, name = _parse_interaction_term(term)
                if name is not None and (side, name) not in letters:
                    if len(letters) >= len(_LETTER_POOL):
                        raise ValueError(f"interactions name more than {len(_LETTER_POOL)} namespaces")
                    letters[(side, name)] = _LETTER_POOL[len(letters)]
        object.__setattr__(self, "interactions", groups)
        object.__setattr__(self, "_letters", letters)

    def letter(self, side: str, name: str) -> str:
        """Return the VW namespace letter of namespace ``name`` on ``side``."""
        named = self._letters.get((side, name))  # type: ignore[attr-defined]
        if named is not None:
            return named
        return _CONTEXT_LETTER if side == "context" else _ACTION_LETTER

    def vw_interactions(self) -> list[str]:
        """Return the letter strings for VW's ``--interactions`` option."""
        result: list[str] = []
        for group in self.interactions:
            options: list[list[str]] = []
            for term in group:
                side, name = _parse_interaction_term(term)
                if name is None:
                    default = _CONTEXT_LETTER if side == "context" else _ACTION_LETTER
                    same_side = [ltr for (s, _), ltr in self._letters.items() if s == side]  # type: ignore[attr-defined]
                    options.append([default, *same_side])
                else:
                    options.append([self.letter(side, name)])
            for combo in product(*options):
                text = "".join(combo)
                if text not in result:
                    result.append(text)
        return result


@lru_cache(maxsize=262_144)
def _string_token(name: str, value: str) -> str:
    return f"{escape_token(name)}={escape_token(value)}"


@lru_cache(maxsize=65_536)
def _name_token(name: str) -> str:
    return escape_token(name)


def _feature_token(name: str, value: FeatureValue) -> str:
    # Categorical tokens repeat across requests, so they are cached whole;
    # numeric tokens cache only the escaped name.
    if isinstance(value, str):
        return _string_token(name, value)
    if isinstance(value, bool):
        return f"{_name_token(name)}!{1 if value else 0}"
    return f"{_name_token(name)}:{float(value)!r}"


class Encoder:
    """Format contexts and actions as VW ADF example lines.

    Parameters
    ----------
    layout : NamespaceLayout
        Which namespaces get their own interaction letter.
    """

    def __init__(self, layout: NamespaceLayout) -> None:
        self.layout = layout

    def _namespace_text(self, side: str, namespaces: Namespaces) -> str:
        parts: list[str] = []
        for ns_name, features in namespaces.items():
            if not features:
                continue
            tokens = " ".join(_feature_token(name, value) for name, value in features.items())
            parts.append(f"|{self.layout.letter(side, ns_name)}{ns_name} {tokens}")
        return " ".join(parts)

    def shared_line(self, context: Namespaces) -> str:
        """Return the ``shared`` line of a context."""
        body = self._namespace_text("context", context)
        return f"shared {body}" if body else "shared |"

    def action_line(self, action: Action, label: str = "") -> str:
        """Return the line of one action, with an optional ``action:cost:probability`` label."""
        body = self._namespace_text("action", action.features)
        # Every action line carries the action id as a feature, so actions
        # without features remain distinguishable to the learner. Its
        # namespace contains "%", which no user namespace name can.
        id_token = f"|{_ACTION_LETTER}%id {escape_token(action.id)}"
        prefix = f"{label} " if label else ""
        return f"{prefix}{id_token} {body}".rstrip()

    def example_lines(
        self,
        context: Namespaces,
        actions: Sequence[Action],
        labelled: tuple[int, float, float] | None = None,
    ) -> list[str]:
        """Return the whole multi-line example.

        Parameters
        ----------
        context : Namespaces
            Validated context namespaces.
        actions : Sequence[Action]
            Eligible actions, in scoring order.
        labelled : tuple of (int, float, float), optional
            ``(index, cost, probability)`` of the chosen action, for learning.
        """
        lines = [self.shared_line(context)]
        for index, action in enumerate(actions):
            label = ""
            if labelled is not None and labelled[0] == index:
                label = f"0:{_label_number(labelled[1])}:{_label_number(labelled[2])}"
            lines.append(self.action_line(action, label))
        return lines
