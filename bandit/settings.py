"""Settings of one policy: model, exploration, reward join and learning mode.

Defaults live here as ``DEFAULT_*`` constants. Every settings class is a
frozen dataclass validated at construction, so code that receives one trusts it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bandit.baseline import BaselineRules
from bandit.events import LearningMode
from bandit.exploration import EpsilonGreedy, Exploration
from bandit.features import NamespaceLayout
from bandit.vwargs import validate_vw_args

__all__ = [
    "Aggregation",
    "JoinSettings",
    "PolicySettings",
    "validate_policy_name",
    "DEFAULT_REWARD_WAIT_TIME",
    "DEFAULT_REWARD",
    "DEFAULT_AGGREGATION",
    "DEFAULT_BIT_PRECISION",
    "DEFAULT_MAX_ACTIONS",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_ORPHAN_HOLD_TIME",
]

DEFAULT_REWARD_WAIT_TIME = 600.0
"""Seconds from a decision until its reward window closes (10 minutes)."""
DEFAULT_REWARD = 0.0
"""Reward learned when no reward arrives inside the window."""
DEFAULT_BIT_PRECISION = 18
"""VW weight-table size in bits (2**18 weights per learner)."""
DEFAULT_MAX_ACTIONS = 256
"""Largest number of candidate actions in one decision."""
DEFAULT_MAX_PENDING = 100_000
"""Largest number of decisions waiting for their window to close."""
DEFAULT_ORPHAN_HOLD_TIME = 60.0
"""Seconds a reward for an unseen decision is held, waiting for the decision."""
DEFAULT_CLOSED_MEMORY = 100_000
"""Number of recently joined event ids remembered to classify late rewards."""

_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def validate_policy_name(name: object) -> str:
    """Check a policy name: 1 to 64 characters from ``[A-Za-z0-9_.-]``, starting alphanumeric."""
    if not isinstance(name, str):
        raise TypeError(f"policy name must be a str, got {type(name).__name__}")
    if not _POLICY_NAME.fullmatch(name):
        raise ValueError(
            f"policy name {name[:70]!r} is invalid: use 1 to 64 characters from [A-Za-z0-9_.-], "
            "starting with a letter or digit"
        )
    return name


class Aggregation(str, Enum):
    """Aggregation rule for several rewards of one event."""

    EARLIEST = "earliest"
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"


@dataclass(frozen=True)
class JoinSettings:
    """Reward-join settings of one policy.

    Parameters
    ----------
    reward_wait_time : float
        Seconds from the decision until its window closes.
    default_reward : float
        Reward learned when no reward arrives in the window.
    aggregation : Aggregation
        How several rewards combine. ``earliest`` joins at the first reward.
    orphan_hold_time : float
        Seconds a reward for an unknown event is held for its decision.
    max_pending : int
        Bound on decisions waiting to be joined; beyond it new decisions are
        rejected with :class:`~bandit.errors.BackpressureError`.
    closed_memory : int
        Number of joined event ids remembered, to tell late rewards from
        orphans.
    """

    reward_wait_time: float = DEFAULT_REWARD_WAIT_TIME
    default_reward: float = DEFAULT_REWARD
    aggregation: Aggregation = Aggregation.EARLIEST
    orphan_hold_time: float = DEFAULT_ORPHAN_HOLD_TIME
    max_pending: int = DEFAULT_MAX_PENDING
    closed_memory: int = DEFAULT_CLOSED_MEMORY

    def __post_init__(self) -> None:
        object.__setattr__(self, "aggregation", Aggregation(self.aggregation))
        for name in ("reward_wait_time", "orphan_hold_time"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if not math.isfinite(self.default_reward):
            raise ValueError(f"default_reward must be finite, got {self.default_reward!r}")
        for name in ("max_pending", "closed_memory"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


DEFAULT_AGGREGATION = Aggregation.EARLIEST


@dataclass(frozen=True)
class PolicySettings:
    """Everything that defines one policy.

    Parameters
    ----------
    name : str
        Policy name, ``[A-Za-z0-9_.-]``, at most 64 characters.
    exploration : Exploration
        Exploration strategy of ``--cb_explore_adf``.
    interactions : tuple of tuple of str
        Feature crosses over namespace names (see
        :class:`~bandit.features.NamespaceLayout`). Without a context-action
        cross the context has no effect on the choice.
    vw_args : tuple of str
        Extra learning hyperparameters, checked against
        :data:`~bandit.vwargs.ALLOWED_OPTIONS`.
    bit_precision : int
        VW weight-table bits, 1 to 30.
    seed : int
        Seeds VW's own generator and the sampling of decisions.
    reward_range : tuple of float
        ``(min, max)`` of accepted rewards. VW receives the matching cost
        range ``[-max, -min]``, which confidence-bound explorers need.
    max_actions : int
        Largest number of candidate actions per decision.
    learning_mode : LearningMode
        ``online``, ``apprentice`` or ``logging_only``.
    baseline : BaselineRules or None
        Declarative baseline rules; ``None`` means the first eligible action.
    join : JoinSettings
        Reward-join settings.
    accepted_namespaces : tuple of str or None
        Data minimization: the context and action namespaces this policy
        accepts. ``None`` accepts every namespace.
    undeclared_namespaces : str
        What happens to a namespace outside ``accepted_namespaces``:
        ``"reject"`` (the request fails with ``ValueError``) or ``"drop"``
        (the namespace is removed before scoring and logging).
    """

    name: str
    exploration: Exploration = field(default_factory=EpsilonGreedy)
    interactions: tuple[tuple[str, ...], ...] = (("context.*", "action.*"),)
    vw_args: tuple[str, ...] = ()
    bit_precision: int = DEFAULT_BIT_PRECISION
    seed: int = 0
    reward_range: tuple[float, float] = (0.0, 1.0)
    max_actions: int = DEFAULT_MAX_ACTIONS
    learning_mode: LearningMode = LearningMode.ONLINE
    baseline: BaselineRules | None = None
    join: JoinSettings = field(default_factory=JoinSettings)
    accepted_namespaces: tuple[str, ...] | None = None
    undeclared_namespaces: str = "reject"

    def __post_init__(self) -> None:
        validate_policy_name(self.name)
        if not isinstance(self.exploration, Exploration):
            raise TypeError(f"exploration must be an Exploration, got {type(self.exploration).__name__}")
        layout = NamespaceLayout(tuple(tuple(g) for g in self.interactions))
        object.__setattr__(self, "interactions", layout.interactions)
        object.__setattr__(self, "vw_args", validate_vw_args(self.vw_args))
        if not isinstance(self.bit_precision, int) or not 1 <= self.bit_precision <= 30:
            raise ValueError(f"bit_precision must be an integer in [1, 30], got {self.bit_precision!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        low, high = (float(v) for v in self.reward_range)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"reward_range must be finite (min, max) with min < max, got {self.reward_range!r}")
        object.__setattr__(self, "reward_range", (low, high))
        if not isinstance(self.max_actions, int) or self.max_actions < 1:
            raise ValueError(f"max_actions must be an integer >= 1, got {self.max_actions!r}")
        object.__setattr__(self, "learning_mode", LearningMode(self.learning_mode))
        if self.accepted_namespaces is not None:
            object.__setattr__(self, "accepted_namespaces", tuple(self.accepted_namespaces))
        if self.undeclared_namespaces not in ("reject", "drop"):
            raise ValueError(
                f"undeclared_namespaces must be 'reject' or 'drop', got {self.undeclared_namespaces!r}"
            )
        if not low <= self.join.default_reward <= high:
            raise ValueError(
                f"join.default_reward {self.join.default_reward!r} is outside reward_range {self.reward_range!r}"
            )

    @property
    def layout(self) -> NamespaceLayout:
        """Namespace-letter layout derived from :attr:`interactions`."""
        return NamespaceLayout(self.interactions)

    def vw_command(self) -> list[str]:
        """Return the full VW argument list of this policy (no file options)."""
        low, high = self.reward_range
        args = [
            "--cb_explore_adf",
            "--quiet",
            "--bit_precision",
            str(self.bit_precision),
            "--random_seed",
            str(self.seed),
            "--cb_min_cost",
            repr(-high),
            "--cb_max_cost",
            repr(-low),
        ]
        if "--cb_type" not in self.vw_args:
            args += ["--cb_type", "mtr"]
        for letters in self.layout.vw_interactions():
            args += ["--interactions", letters]
        args += self.exploration.vw_args()
        args += list(self.vw_args)
        return args

    def model_signature(self) -> dict[str, Any]:
        """Return the settings a saved model depends on, for checkpoint compatibility."""
        return {
            "exploration": self.exploration.to_dict(),
            "interactions": [list(g) for g in self.interactions],
            "vw_args": list(self.vw_args),
            "bit_precision": self.bit_precision,
            "reward_range": list(self.reward_range),
        }
