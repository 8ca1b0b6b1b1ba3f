"""Baseline policies: the first eligible action, or declarative rules.

Rules are what a marketer writes ("mobile and on Wi-Fi -> large images"): an
ordered list, each a conjunction of conditions over context features and an
action id, ending in a default action. They are evaluated by plain
comparisons, never by ``eval``. The baseline is what apprentice and
logging-only modes return, the fallback when no model is available, and the
reference policy in offline reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bandit.features import FeatureValue, Namespaces

__all__ = ["Condition", "Rule", "BaselineRules", "choose_baseline", "OPERATORS"]

OPERATORS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "present", "absent")
"""Condition operators. ``in``/``not_in`` take a list; ``present``/``absent`` take no value."""


@dataclass(frozen=True)
class Condition:
    """One test of a context feature.

    Parameters
    ----------
    feature : str
        ``namespace.name`` of the feature.
    op : str
        One of :data:`OPERATORS`.
    value : str, float, bool, tuple or None
        Right-hand side; a tuple for ``in``/``not_in``, a number for the
        ordering operators, ``None`` for ``present``/``absent``.
    """

    feature: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        namespace, _, name = self.feature.partition(".")
        if not namespace or not name:
            raise ValueError(f"condition feature {self.feature!r} must be written namespace.name")
        if self.op not in OPERATORS:
            raise ValueError(f"condition operator {self.op!r} on {self.feature!r} is unknown; use one of {OPERATORS}")
        if self.op in ("in", "not_in"):
            if isinstance(self.value, (str, bytes)) or not isinstance(self.value, Sequence):
                raise ValueError(f"condition {self.op!r} on {self.feature!r} needs a list of values, got {self.value!r}")
            object.__setattr__(self, "value", tuple(self.value))
        elif self.op in ("lt", "le", "gt", "ge"):
            if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
                raise ValueError(f"condition {self.op!r} on {self.feature!r} needs a number, got {self.value!r}")
        elif self.op in ("present", "absent"):
            if self.value is not None:
                raise ValueError(f"condition {self.op!r} on {self.feature!r} takes no value, got {self.value!r}")
        elif self.value is None:
            raise ValueError(f"condition {self.op!r} on {self.feature!r} needs a value")

    def holds(self, context: Namespaces) -> bool:
        """Evaluate the condition; a missing feature fails every test but ``absent``."""
        namespace, _, name = self.feature.partition(".")
        features: Mapping[str, FeatureValue] = context.get(namespace, {})
        if name not in features:
            return self.op == "absent"
        seen = features[name]
        if self.op == "present":
            return True
        if self.op == "absent":
            return False
        if self.op == "eq":
            return _same(seen, self.value)
        if self.op == "ne":
            return not _same(seen, self.value)
        if self.op == "in":
            return any(_same(seen, v) for v in self.value)
        if self.op == "not_in":
            return not any(_same(seen, v) for v in self.value)
        if isinstance(seen, bool) or not isinstance(seen, (int, float)):
            return False
        if self.op == "lt":
            return seen < self.value
        if self.op == "le":
            return seen <= self.value
        if self.op == "gt":
            return seen > self.value
        return seen >= self.value


def _same(a: object, b: object) -> bool:
    # Booleans compare only with booleans, so True never equals 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


@dataclass(frozen=True)
class Rule:
    """``action`` applies when every condition holds."""

    conditions: tuple[Condition, ...]
    action: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))


@dataclass(frozen=True)
class BaselineRules:
    """Ordered rules ending in a default action.

    Parameters
    ----------
    rules : tuple of Rule
        Tried in order; the first whose conditions hold and whose action is
        eligible wins.
    default : str
        Action used when no rule applies.
    known_actions : tuple of str
        Every action id the policy may be offered; a rule or default naming
        another id is a configuration error.
    """

    rules: tuple[Rule, ...]
    default: str
    known_actions: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "known_actions", tuple(self.known_actions))
        known = set(self.known_actions)
        if not known:
            raise ValueError("baseline known_actions must list the policy's action ids")
        for index, rule in enumerate(self.rules):
            if rule.action not in known:
                raise ValueError(f"baseline rule {index} names unknown action {rule.action!r}")
        if self.default not in known:
            raise ValueError(f"baseline default names unknown action {self.default!r}")

    def choose(self, context: Namespaces, eligible: Sequence[str]) -> str:
        """Return the baseline action among ``eligible`` (a non-empty sequence of ids)."""
        allowed = set(eligible)
        for rule in self.rules:
            if rule.action in allowed and all(c.holds(context) for c in rule.conditions):
                return rule.action
        if self.default in allowed:
            return self.default
        return eligible[0]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "rules": [
                {
                    "when": [{"feature": c.feature, "op": c.op, "value": _jsonable(c.value)} for c in r.conditions],
                    "action": r.action,
                }
                for r in self.rules
            ],
            "default": self.default,
            "known_actions": list(self.known_actions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineRules:
        """Build rules from :meth:`to_dict` output or the YAML configuration."""
        rules = tuple(
            Rule(
                conditions=tuple(Condition(c["feature"], c["op"], c.get("value")) for c in rule.get("when", ())),
                action=rule["action"],
            )
            for rule in data.get("rules", ())
        )
        return cls(rules=rules, default=data["default"], known_actions=tuple(data["known_actions"]))


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def choose_baseline(rules: BaselineRules | None, context: Namespaces, eligible: Sequence[str]) -> str:
    """Return the baseline action: the rules' choice, or the first eligible action."""
    if rules is None:
        return eligible[0]
    return rules.choose(context, eligible)
