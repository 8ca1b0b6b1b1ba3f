"""Drift: a scenario whose hidden preferences change during the run.

:class:`DriftScenario` combines two scenarios with the same actions: visitors
are drawn from the first, and their expected rewards follow the first before
the change and the second after it. An ``abrupt`` change switches at
``change_round``; a ``gradual`` change blends the two linearly over
``width`` rounds starting at ``change_round``. The oracle follows the
current preferences, so regret after the change measures how fast a policy
adapts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from bandit.baseline import BaselineRules
from bandit.features import Action, Namespaces
from simulations.scenario import RewardTiming, Scenario, check_same_actions

__all__ = ["DriftScenario", "DRIFT_KINDS"]

DRIFT_KINDS = ("abrupt", "gradual")


class DriftScenario(Scenario):
    """Preferences that move from ``before`` to ``after`` at a given round.

    Parameters
    ----------
    before : Scenario
        Draws the visitors, and gives the expected rewards before the change.
    after : Scenario
        Gives the expected rewards after the change; its actions must have the
        same ids in the same order as ``before``'s.
    change_round : int
        First round of the change (0-based).
    kind : str
        ``abrupt`` or ``gradual``.
    width : int
        Rounds over which a gradual change blends ``before`` into ``after``;
        ignored for an abrupt change.
    timing : RewardTiming, optional
        Delays and losses of reward reports; ``before``'s when omitted.

    Notes
    -----
    The weight of ``after`` in round ``t`` is ``w(t) = 1[t >= change_round]``
    for an abrupt change and ``w(t) = clip((t - change_round + 1) / width,
    0, 1)`` for a gradual one; the expected reward is ``(1 - w) * before +
    w * after``.
    """

    name: ClassVar[str] = "drift"

    def __init__(
        self,
        before: Scenario,
        after: Scenario,
        *,
        change_round: int,
        kind: str = "abrupt",
        width: int = 1,
        timing: RewardTiming | None = None,
    ) -> None:
        super().__init__(timing if timing is not None else before.timing)
        for label, value in (("before", before), ("after", after)):
            if not isinstance(value, Scenario):
                raise TypeError(f"{label} must be a Scenario, got {type(value).__name__}")
        if kind not in DRIFT_KINDS:
            raise ValueError(f"kind must be one of {DRIFT_KINDS}, got {kind!r}")
        if isinstance(change_round, bool) or not isinstance(change_round, int) or change_round < 0:
            raise ValueError(f"change_round must be an integer >= 0, got {change_round!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        check_same_actions(before.actions(), after.actions(), "DriftScenario")
        self.before = before
        self.after = after
        self.change_round = change_round
        self.kind = kind
        self.width = width if kind == "gradual" else 1
        self.name = f"drift-{kind}"

    def weight(self, round_index: int) -> float:
        """Return the weight of the ``after`` preferences in ``round_index``."""
        if self.kind == "abrupt":
            return 1.0 if round_index >= self.change_round else 0.0
        return float(np.clip((round_index - self.change_round + 1) / self.width, 0.0, 1.0))

    def actions(self) -> tuple[Action, ...]:
        """Return ``before``'s actions."""
        return self.before.actions()

    def sample_context(self, rng: np.random.Generator, round_index: int) -> Namespaces:
        """Draw a visitor from ``before``'s population."""
        return self.before.sample_context(rng, round_index)

    def expected_rewards(self, context: Namespaces, round_index: int) -> np.ndarray:
        """Blend the two scenarios' expected rewards by :meth:`weight`."""
        w = self.weight(round_index)
        if w == 0.0:
            return self.before.expected_rewards(context, round_index)
        if w == 1.0:
            return self.after.expected_rewards(context, round_index)
        before = np.asarray(self.before.expected_rewards(context, round_index), dtype=float)
        after = np.asarray(self.after.expected_rewards(context, round_index), dtype=float)
        return (1.0 - w) * before + w * after

    def segment(self, context: Namespaces) -> str:
        """Return ``before``'s segment."""
        return self.before.segment(context)

    def baseline_rules(self) -> BaselineRules | None:
        """Return ``before``'s rules: the marketer does not notice the drift."""
        return self.before.baseline_rules()

    def slots(self) -> Mapping[str, tuple[Action, ...]] | None:
        """Return ``before``'s slots."""
        return self.before.slots()

    def compose_action(self, choices: Sequence[str]) -> str:
        """Compose as ``before`` does."""
        return self.before.compose_action(choices)

    @property
    def interactions(self) -> tuple[tuple[str, ...], ...]:
        """Feature crosses suited to ``before``'s features."""
        return self.before.interactions

    def describe(self) -> dict[str, Any]:
        """Return both scenarios' parameters and the change."""
        return {
            **super().describe(),
            "kind": self.kind,
            "change_round": self.change_round,
            "width": self.width,
            "before": self.before.describe(),
            "after": self.after.describe(),
        }
