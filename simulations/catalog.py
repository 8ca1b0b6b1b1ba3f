"""The named scenarios of ``microbandit simulate``.

Each entry builds a scenario from the command's options. ``micro`` is the
embedded default; the others vary it (delayed and missing rewards, abrupt or
gradual drift). A researcher's own :class:`~simulations.scenario.Scenario`
subclass can be run from Python with :func:`~simulations.runner.run_simulation`
or added here with :func:`register_scenario`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulations.drift import DriftScenario
from simulations.micro import DRIFTED_CLICK_MODEL, MicroAdjustmentScenario
from simulations.scenario import RewardTiming, Scenario

__all__ = ["ScenarioOptions", "SCENARIOS", "build_scenario", "register_scenario", "DELAYED_TIMING"]

DELAYED_TIMING = RewardTiming(mean_delay_s=300.0, min_delay_s=5.0, missing_rate=0.2)
"""Reward reports of the ``micro-delayed`` scenario: 5 s plus an exponential
delay with a mean of 5 minutes, and one in five never arrives. With the
default 10-minute wait about 14% of the arriving reports are late."""


@dataclass(frozen=True)
class ScenarioOptions:
    """Options of the command that shape a scenario.

    Parameters
    ----------
    rounds : int
        Rounds of the run; a drift with no ``change_round`` happens halfway.
    change_round : int or None
        Round of a drift.
    drift_width : int
        Rounds a gradual drift takes.
    """

    rounds: int
    change_round: int | None = None
    drift_width: int = 2000


def _micro(options: ScenarioOptions) -> Scenario:
    return MicroAdjustmentScenario()


def _micro_delayed(options: ScenarioOptions) -> Scenario:
    scenario = MicroAdjustmentScenario(timing=DELAYED_TIMING)
    scenario.name = "micro-delayed"
    return scenario


def _drift(kind: str) -> Callable[[ScenarioOptions], Scenario]:
    def build(options: ScenarioOptions) -> Scenario:
        change = options.change_round if options.change_round is not None else options.rounds // 2
        return DriftScenario(
            MicroAdjustmentScenario(),
            MicroAdjustmentScenario(DRIFTED_CLICK_MODEL),
            change_round=change,
            kind=kind,
            width=options.drift_width,
        )

    return build


SCENARIOS: dict[str, tuple[Callable[[ScenarioOptions], Scenario], str]] = {
    "micro": (_micro, "micro-adjustments of a product page (the embedded default)"),
    "micro-delayed": (_micro_delayed, "micro-adjustments with delayed and missing reward reports"),
    "drift-abrupt": (_drift("abrupt"), "micro-adjustments whose preferences switch at --change-round"),
    "drift-gradual": (_drift("gradual"), "micro-adjustments whose preferences move over --drift-width rounds"),
}
"""Scenario name to (builder, one-line description)."""


def register_scenario(name: str, builder: Callable[[ScenarioOptions], Scenario], description: str) -> None:
    """Add a named scenario to :data:`SCENARIOS`; an existing name raises ``ValueError``."""
    if name in SCENARIOS:
        raise ValueError(f"scenario {name!r} is already registered")
    SCENARIOS[name] = (builder, description)


def build_scenario(name: str, options: ScenarioOptions) -> Scenario:
    """Build the named scenario; an unknown name raises ``ValueError`` listing the known ones."""
    entry = SCENARIOS.get(name)
    if entry is None:
        raise ValueError(f"scenario {name!r} is unknown; use one of {sorted(SCENARIOS)}")
    return entry[0](options)
