"""Policies a simulation compares, and the agents that play them.

A :class:`PolicySpec` names a policy and describes how to build it: the reference
policies (uniform random, the scenario's rules baseline, the oracle) are
played natively, and every Vowpal Wabbit policy runs through the project's
own :class:`~bandit.loop.DecisionLoop`, with the simulated clock injected, so
a simulation exercises exactly the code a server runs.

When a run writes event logs, the reference policies hand their decisions to
a :class:`~bandit.learner.Learner` in ``logging_only`` mode, so every policy's
log has the same schema and the same reward-join semantics.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bandit.baseline import BaselineRules, choose_baseline
from bandit.events import DecisionRecord, LearningMode, RewardRecord
from bandit.exploration import Bag, Cover, EpsilonGreedy, Exploration, ExploreFirst, RegCB, Softmax, SquareCB
from bandit.features import Action
from bandit.learner import Learner
from bandit.loop import DecisionLoop
from bandit.policy import uniform_draw
from bandit.settings import JoinSettings, PolicySettings
from simulations.scenario import Scenario, VisitorStream, derive_seed

__all__ = [
    "PolicySpec",
    "Agent",
    "SimulatedClock",
    "PRESETS",
    "REFERENCE_KINDS",
    "resolve_policies",
    "build_agent",
]

logger = logging.getLogger(__name__)

REFERENCE_KINDS = ("uniform", "baseline", "oracle")
"""Policies played natively rather than through a VW model."""

_INTERACTIONS = (("context.*", "action.*"),)
# A constant learning rate (no decay with --power_t 0) keeps old evidence from
# outweighing new evidence forever, so the model can follow drift.
_ADAPTIVE_ARGS = ("--power_t", "0", "--learning_rate", "0.3")


@dataclass(frozen=True)
class PolicySpec:
    """A named policy of a simulation.

    Parameters
    ----------
    name : str
        Label in tables and plots, also the policy name in event logs
        (``[A-Za-z0-9_.-]``, at most 64 characters).
    kind : str
        ``uniform``, ``baseline``, ``oracle`` or ``vw``.
    exploration : Exploration, optional
        Exploration of a ``vw`` policy.
    vw_args : tuple of str
        Extra VW learning hyperparameters of a ``vw`` policy.
    interactions : tuple of tuple of str, optional
        Feature crosses of a ``vw`` policy; the scenario's
        :attr:`~simulations.scenario.Scenario.interactions` when omitted.
    per_slot : bool
        Learn one ``vw`` policy per slot of the scenario (see
        :meth:`Scenario.slots`) instead of one over the combined actions.
    description : str
        One line for the help text and the summary.
    """

    name: str
    kind: str
    exploration: Exploration | None = None
    vw_args: tuple[str, ...] = ()
    interactions: tuple[tuple[str, ...], ...] | None = None
    per_slot: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (*REFERENCE_KINDS, "vw"):
            raise ValueError(f"policy kind {self.kind!r} is unknown; use one of {(*REFERENCE_KINDS, 'vw')}")
        if self.kind == "vw" and self.exploration is None:
            raise ValueError(f"policy {self.name!r} of kind 'vw' needs an exploration")
        if self.kind != "vw" and self.per_slot:
            raise ValueError(f"policy {self.name!r}: per_slot applies to 'vw' policies only")
        # Validates the name, exploration, interactions and VW arguments once.
        self.settings(seed=0, join=JoinSettings())

    @property
    def is_reference(self) -> bool:
        """Whether the policy is played natively (uniform, baseline, oracle)."""
        return self.kind in REFERENCE_KINDS

    def settings(
        self,
        *,
        seed: int,
        join: JoinSettings,
        baseline: BaselineRules | None = None,
        name: str | None = None,
        learning_mode: LearningMode = LearningMode.ONLINE,
        interactions: tuple[tuple[str, ...], ...] = _INTERACTIONS,
    ) -> PolicySettings:
        """Return the :class:`PolicySettings` of this policy for one seed.

        ``interactions`` applies when the spec sets none.
        """
        return PolicySettings(
            name=name or self.name,
            exploration=self.exploration or EpsilonGreedy(1.0),
            interactions=self.interactions or interactions,
            vw_args=self.vw_args,
            seed=seed,
            learning_mode=learning_mode,
            baseline=baseline,
            join=join,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "name": self.name,
            "kind": self.kind,
            "exploration": self.exploration.to_dict() if self.exploration else None,
            "vw_args": list(self.vw_args),
            "interactions": [list(g) for g in self.interactions] if self.interactions else None,
            "per_slot": self.per_slot,
        }


PRESETS: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        PolicySpec("uniform", "uniform", description="every action with equal probability"),
        PolicySpec("baseline", "baseline", description="the scenario's marketer rules, never exploring"),
        PolicySpec("oracle", "oracle", description="the best action per visitor under the hidden model"),
        PolicySpec(
            "epsilon-greedy", "vw", EpsilonGreedy(0.05), description="VW, greedy with 5% uniform exploration"
        ),
        # Click rates of a few percent make reward gaps of a few hundredths.
        # With such gaps gamma_scale 10 (VW's default) explored about a quarter
        # of the time in the micro-adjustment scenario, and 100 settled on a
        # wrong page in some seeds. 30 did neither there.
        PolicySpec("squarecb", "vw", SquareCB(gamma_scale=30.0), description="VW, SquareCB with gamma_scale 30"),
        PolicySpec("bag", "vw", Bag(size=5, epsilon=0.02), description="VW, online bootstrap of 5 with 2% epsilon"),
        PolicySpec("cover", "vw", Cover(size=3, psi=0.1), description="VW, online cover of 3 with psi 0.1"),
        PolicySpec("softmax", "vw", Softmax(lambda_=100.0), description="VW, softmax with lambda 100"),
        PolicySpec("regcb", "vw", RegCB(mellowness=0.1), description="VW, RegCB elimination"),
        PolicySpec("explore-first", "vw", ExploreFirst(tau=2000), description="VW, uniform for 2000 rounds, then greedy"),
        PolicySpec(
            "squarecb-adaptive",
            "vw",
            SquareCB(gamma_scale=3000.0, gamma_exponent=0.0),
            vw_args=_ADAPTIVE_ARGS,
            description="VW, SquareCB with a constant learning rate and gamma, to follow drift",
        ),
        PolicySpec(
            "epsilon-greedy-adaptive",
            "vw",
            EpsilonGreedy(0.05),
            vw_args=_ADAPTIVE_ARGS,
            description="VW, epsilon-greedy with a constant learning rate, to follow drift",
        ),
        PolicySpec(
            "squarecb-slots",
            "vw",
            SquareCB(gamma_scale=30.0),
            per_slot=True,
            description="VW, one SquareCB policy per slot (wording, image, layout)",
        ),
    )
}
"""Named policies of ``microbandit simulate --policies``."""


def resolve_policies(names: Sequence[str], extra: Mapping[str, PolicySpec] | None = None) -> list[PolicySpec]:
    """Look up policy names among :data:`PRESETS` and ``extra``.

    Raises
    ------
    ValueError
        If a name is unknown or repeated; the message lists the known names.
    """
    known = {**PRESETS, **(extra or {})}
    result: list[PolicySpec] = []
    for name in names:
        if name not in known:
            raise ValueError(f"policy {name!r} is unknown; use one of {sorted(known)}")
        if any(spec.name == name for spec in result):
            raise ValueError(f"policy {name!r} is listed more than once")
        result.append(known[name])
    if not result:
        raise ValueError("policies must name at least one policy")
    return result


class SimulatedClock:
    """A settable clock in seconds since the epoch, injected into the decision loops."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now


@dataclass
class Choice:
    """An agent's choice in one round: action index, logged probability, model version."""

    action_index: int
    probability: float
    model_version: int


class Agent(ABC):
    """One policy playing one seed: chooses, receives rewards, advances time."""

    @abstractmethod
    def choose(self, round_index: int, event_id: str) -> Choice:
        """Choose an action for the visitor of ``round_index``."""

    @abstractmethod
    def reward(self, event_id: str, value: float) -> None:
        """Deliver a reward report at the clock's current time."""

    @abstractmethod
    def advance(self, now: float) -> None:
        """Close the reward windows that ended by ``now``."""

    @abstractmethod
    def close(self) -> None:
        """Join what is still pending, flush logs and release models."""


class _ReferenceAgent(Agent):
    """Uniform, baseline or oracle, with an optional logging-only learner."""

    def __init__(
        self,
        kind: str,
        stream: VisitorStream,
        seed: int,
        clock: SimulatedClock,
        baseline: BaselineRules | None,
        learner: Learner | None,
        policy_name: str,
    ) -> None:
        self.kind = kind
        self.stream = stream
        self.seed = seed
        self.clock = clock
        self.baseline = baseline
        self.learner = learner
        self.policy_name = policy_name
        self.ids = tuple(a.id for a in stream.actions)
        self._oracle = stream.oracle_indices if kind == "oracle" else None

    def choose(self, round_index: int, event_id: str) -> Choice:
        n = len(self.ids)
        if self.kind == "uniform":
            index = min(int(uniform_draw(self.seed, event_id) * n), n - 1)
            pmf = (1.0 / n,) * n
        elif self.kind == "oracle":
            assert self._oracle is not None
            index = int(self._oracle[round_index])
            pmf = tuple(1.0 if i == index else 0.0 for i in range(n))
        else:
            chosen = choose_baseline(self.baseline, self.stream.contexts[round_index], self.ids)
            index = self.stream.action_index[chosen]
            pmf = tuple(1.0 if i == index else 0.0 for i in range(n))
        if self.learner is not None:
            self.learner.record_decision(
                DecisionRecord(
                    event_id=event_id,
                    policy=self.policy_name,
                    timestamp=self.clock.now,
                    context=self.stream.contexts[round_index],
                    actions=self.stream.actions,
                    excluded_ids=(),
                    action_ids=self.ids,
                    pmf=pmf,
                    chosen_action=self.ids[index],
                    probability=pmf[index],
                    model_version=0,
                    learning_mode=LearningMode.ONLINE,
                    baseline_action=choose_baseline(self.baseline, self.stream.contexts[round_index], self.ids),
                )
            )
        return Choice(index, pmf[index], 0)

    def reward(self, event_id: str, value: float) -> None:
        if self.learner is not None:
            self.learner.record_reward(RewardRecord(event_id, self.policy_name, self.clock.now, value))

    def advance(self, now: float) -> None:
        if self.learner is not None:
            self.learner.advance(now)

    def close(self) -> None:
        if self.learner is not None:
            self.learner.advance(self.clock.now + self.learner.settings.join.reward_wait_time + 1.0)
            self.learner.close()


class _LoopAgent(Agent):
    """A VW policy over the combined actions, through a :class:`DecisionLoop`."""

    def __init__(self, loop: DecisionLoop, stream: VisitorStream, clock: SimulatedClock) -> None:
        self.loop = loop
        self.stream = stream
        self.clock = clock

    def choose(self, round_index: int, event_id: str) -> Choice:
        decision = self.loop.choose(self.stream.contexts[round_index], self.stream.actions, event_id=event_id)
        return Choice(self.stream.action_index[decision.chosen_action], decision.probability, decision.model_version)

    def reward(self, event_id: str, value: float) -> None:
        self.loop.reward(event_id, value)

    def advance(self, now: float) -> None:
        self.loop.advance(now)

    def close(self) -> None:
        self.loop.advance(self.clock.now + self.loop.settings.join.reward_wait_time + 1.0)
        self.loop.close()


class _SlotAgent(Agent):
    """One VW policy per slot; the page is the combination of the slot choices.

    Each slot's loop receives the context and its own variants (with their
    features) and learns from the page's reward, so each slot treats the
    other slots' choices as noise. The logged probability of the page is the
    product of the slot probabilities, because the slots sample independently.
    """

    def __init__(
        self,
        loops: Mapping[str, DecisionLoop],
        slot_actions: Mapping[str, tuple[Action, ...]],
        stream: VisitorStream,
        clock: SimulatedClock,
        compose: Callable[[Sequence[str]], str],
    ) -> None:
        self.loops = dict(loops)
        self.slot_actions = dict(slot_actions)
        self.stream = stream
        self.clock = clock
        self.compose = compose

    def choose(self, round_index: int, event_id: str) -> Choice:
        context = self.stream.contexts[round_index]
        chosen: list[str] = []
        probability = 1.0
        version = 0
        for slot, loop in self.loops.items():
            decision = loop.choose(context, self.slot_actions[slot], event_id=event_id)
            chosen.append(decision.chosen_action)
            probability *= decision.probability
            version = max(version, decision.model_version)
        return Choice(self.stream.action_index[self.compose(chosen)], probability, version)

    def reward(self, event_id: str, value: float) -> None:
        for loop in self.loops.values():
            loop.reward(event_id, value)

    def advance(self, now: float) -> None:
        for loop in self.loops.values():
            loop.advance(now)

    def close(self) -> None:
        for loop in self.loops.values():
            loop.advance(self.clock.now + loop.settings.join.reward_wait_time + 1.0)
            loop.close()


def build_agent(
    spec: PolicySpec,
    scenario: Scenario,
    stream: VisitorStream,
    *,
    seed: int,
    clock: SimulatedClock,
    join: JoinSettings,
    log_dir: str | os.PathLike[str] | None = None,
) -> Agent:
    """Build the agent that plays ``spec`` on one seed's stream.

    Parameters
    ----------
    spec : PolicySpec
        The policy.
    scenario : Scenario
        The scenario (for its baseline rules and slots).
    stream : VisitorStream
        The seed's visitors.
    seed : int
        The run seed; the policy's own seed is derived from it and its name.
    clock : SimulatedClock
        The clock the decision loops read.
    join : JoinSettings
        Reward wait time, default reward and aggregation.
    log_dir : path, optional
        Where the policy writes its event log; ``None`` logs nothing.
    """
    policy_seed = derive_seed(seed, spec.name) % (2**31 - 1)
    rules = scenario.baseline_rules()
    if spec.is_reference:
        learner = None
        if log_dir is not None:
            settings = spec.settings(
                seed=policy_seed, join=join, baseline=rules, learning_mode=LearningMode.LOGGING_ONLY
            )
            learner = Learner(settings, log_dir, restore=False)
        return _ReferenceAgent(spec.kind, stream, policy_seed, clock, rules, learner, spec.name)

    if not spec.per_slot:
        settings = spec.settings(seed=policy_seed, join=join, baseline=rules, interactions=scenario.interactions)
        loop = DecisionLoop(settings, log_dir, clock=clock, restore=False)
        return _LoopAgent(loop, stream, clock)

    slot_actions = scenario.slots()
    if not slot_actions:
        raise ValueError(f"scenario {scenario.name!r} has no slots, so the per-slot policy {spec.name!r} cannot run")
    loops: dict[str, DecisionLoop] = {}
    for slot in slot_actions:
        name = f"{spec.name}.{slot}"
        settings = spec.settings(
            seed=derive_seed(policy_seed, slot) % (2**31 - 1), join=join, name=name, interactions=scenario.interactions
        )
        slot_dir = None if log_dir is None else os.path.join(os.fspath(log_dir), slot)
        loops[slot] = DecisionLoop(settings, slot_dir, clock=clock, restore=False)
    return _SlotAgent(loops, slot_actions, stream, clock, scenario.compose_action)
