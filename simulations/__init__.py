"""Simulations for researchers: scenarios, runners, results and plots.

A :class:`~simulations.scenario.Scenario` is a hidden model of visitors and
of how they respond to each action. The in-process runner
(:func:`~simulations.runner.run_simulation`) plays the same seeded visitors to
every policy (uniform random, the scenario's rules baseline, Vowpal Wabbit
explorers through :class:`~bandit.loop.DecisionLoop`, and the oracle) on a
simulated clock; :class:`~simulations.results.SimulationResult` summarizes
the runs across seeds and :mod:`simulations.plots` draws them. The gRPC
runner (:func:`~simulations.grpc_runner.run_server_simulation`) plays the
same visitors through a running ``microbandit serve``, and
:func:`~simulations.offline_agreement.run_agreement` checks offline
evaluation of a simulated log against online simulation.
``microbandit simulate`` is the command-line entry point.
"""

from simulations.catalog import SCENARIOS, ScenarioOptions, build_scenario, register_scenario
from simulations.drift import DriftScenario
from simulations.grpc_runner import ServedPolicy, ServerRunSettings, compare_runners, run_server_simulation
from simulations.micro import DRIFTED_CLICK_MODEL, ClickModel, MicroAdjustmentScenario
from simulations.offline_agreement import AgreementSettings, run_agreement
from simulations.policies import PRESETS, PolicySpec, resolve_policies
from simulations.results import SimulationResult
from simulations.runner import RunSettings, run_policy, run_simulation
from simulations.scenario import RewardTiming, Scenario, VisitorStream
from simulations.stats import Interval, mean_interval

__all__ = [
    "AgreementSettings",
    "ClickModel",
    "DRIFTED_CLICK_MODEL",
    "DriftScenario",
    "Interval",
    "MicroAdjustmentScenario",
    "PRESETS",
    "PolicySpec",
    "RewardTiming",
    "RunSettings",
    "SCENARIOS",
    "Scenario",
    "ScenarioOptions",
    "ServedPolicy",
    "ServerRunSettings",
    "SimulationResult",
    "VisitorStream",
    "build_scenario",
    "compare_runners",
    "mean_interval",
    "register_scenario",
    "resolve_policies",
    "run_agreement",
    "run_policy",
    "run_server_simulation",
    "run_simulation",
]
