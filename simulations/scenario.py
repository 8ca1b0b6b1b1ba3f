"""The base class of simulated environments and the precomputed visitor stream.

A scenario is a hidden model of a population and of how it responds to each
action. A runner never asks the scenario what a policy should do: it draws a
:class:`VisitorStream` once per seed (contexts, the true expected reward of
every action, the uniform draws that decide each realized reward, and when
each reward would reach the server) and replays that same stream to every
policy. Every policy therefore meets the same visitors and the same luck
(common random numbers), which makes the differences between policies far
less noisy than independent draws would.

To add a scenario, subclass :class:`Scenario` and implement
:meth:`Scenario.actions`, :meth:`Scenario.sample_context` and
:meth:`Scenario.expected_rewards`; override :meth:`Scenario.segment` and
:meth:`Scenario.baseline_rules` where the defaults do not fit.
"""

from __future__ import annotations

import math
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bandit.baseline import BaselineRules
from bandit.features import Action, Namespaces, validate_actions, validate_namespaces

__all__ = [
    "RewardTiming",
    "Scenario",
    "VisitorStream",
    "derive_seed",
]


def derive_seed(seed: int, *labels: str) -> int:
    """Derive a child seed from ``seed`` and text labels, stable across processes.

    Python's ``hash`` of a string changes per process, so the labels go
    through CRC-32 instead.
    """
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(label.encode("utf-8")) for label in labels]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(frozen=True)
class RewardTiming:
    """When the reward of a visit reaches the server, if ever.

    Only non-zero rewards are reported (a click is reported; a visitor who
    does not click sends nothing), which is how a web service reports
    conversions. Each report is delayed by an exponential random delay with
    mean ``mean_delay_s`` plus ``min_delay_s``, and is lost with probability
    ``missing_rate``. A lost or too-late reward is learned as the policy's
    default reward once the reward wait time has passed.

    Parameters
    ----------
    mean_delay_s : float
        Mean of the exponential part of the delay, in simulated seconds;
        0 means no random part.
    min_delay_s : float
        Fixed part of the delay, in simulated seconds.
    missing_rate : float
        Probability in [0, 1) that a reward never arrives.
    """

    mean_delay_s: float = 0.0
    min_delay_s: float = 0.0
    missing_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mean_delay_s", "min_delay_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"RewardTiming.{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"RewardTiming.{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.missing_rate, (int, float)) or isinstance(self.missing_rate, bool):
            raise TypeError(f"RewardTiming.missing_rate must be a number, got {type(self.missing_rate).__name__}")
        if not 0.0 <= self.missing_rate < 1.0:
            raise ValueError(f"RewardTiming.missing_rate must be in [0, 1), got {self.missing_rate!r}")

    @property
    def immediate(self) -> bool:
        """Whether every reward arrives at once and none is lost."""
        return self.mean_delay_s == 0 and self.min_delay_s == 0 and self.missing_rate == 0

    def sample(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``count`` delays (seconds) and lost-report flags."""
        delays = np.full(count, float(self.min_delay_s))
        if self.mean_delay_s > 0:
            delays += rng.exponential(self.mean_delay_s, size=count)
        lost = rng.random(count) < self.missing_rate if self.missing_rate > 0 else np.zeros(count, dtype=bool)
        return delays, lost


@dataclass(frozen=True)
class VisitorStream:
    """Everything random about one seed of a scenario, drawn in advance.

    Attributes
    ----------
    seed : int
        The seed the stream was drawn with.
    contexts : tuple of Namespaces
        One validated context per round.
    expected : numpy.ndarray
        Shape ``(rounds, n_actions)``: the true expected reward of every
        action in every round, columns in the order of ``actions``.
    draws : numpy.ndarray
        Shape ``(rounds,)``, uniform in [0, 1): the realized reward of a
        round is ``1.0`` when ``draws[t] < expected[t, chosen]``, else 0.
    delays : numpy.ndarray
        Shape ``(rounds,)``: seconds between the decision and the arrival of
        its reward report.
    lost : numpy.ndarray
        Shape ``(rounds,)``, bool: the reward report never arrives.
    segments : tuple of str
        Segment label of every round, for per-segment lift.
    actions : tuple of Action
        The candidate actions, in column order of ``expected``.
    """

    seed: int
    contexts: tuple[Namespaces, ...]
    expected: np.ndarray
    draws: np.ndarray
    delays: np.ndarray
    lost: np.ndarray
    segments: tuple[str, ...]
    actions: tuple[Action, ...]
    action_index: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_index", {a.id: i for i, a in enumerate(self.actions)})

    @property
    def rounds(self) -> int:
        """Number of rounds in the stream."""
        return len(self.contexts)

    @property
    def oracle_indices(self) -> np.ndarray:
        """Column of the best action in each round (lowest index on ties)."""
        return np.argmax(self.expected, axis=1)

    @property
    def oracle_rewards(self) -> np.ndarray:
        """Expected reward of the best action in each round."""
        return np.max(self.expected, axis=1)

    def realized_reward(self, round_index: int, action_index: int) -> float:
        """Return the reward the visitor of ``round_index`` gives action ``action_index``."""
        return 1.0 if self.draws[round_index] < self.expected[round_index, action_index] else 0.0


class Scenario(ABC):
    """A simulated population, its candidate actions and its hidden reward model.

    Subclasses implement three hooks:

    * :meth:`actions`: the candidate actions (ids and features), the same in
      every round;
    * :meth:`sample_context`: one visitor's context, drawn with the given
      generator;
    * :meth:`expected_rewards`: the true probability of a reward of 1 (or,
      for graded rewards, the expected reward in [0, 1]) of each action for
      a context in a given round. Depending on the round is how a scenario
      drifts.

    Optional hooks: :meth:`segment` (the label used for per-segment lift),
    :meth:`baseline_rules` (the marketer's rules that the rules baseline
    follows), and the :attr:`timing` attribute (reward delays and losses).

    A scenario object holds only its parameters; all randomness comes from the
    generator :meth:`stream` builds from the seed, so two streams drawn with
    the same seed are identical.

    Parameters
    ----------
    timing : RewardTiming, optional
        Delays and losses of reward reports; immediate and complete by
        default.
    """

    name: ClassVar[str] = "scenario"
    """Short name used in result tables and file names."""

    interactions: tuple[tuple[str, ...], ...] = (("context.*", "action.*"),)
    """Feature crosses the VW policies use unless a policy sets its own."""

    def __init__(self, timing: RewardTiming | None = None) -> None:
        if timing is not None and not isinstance(timing, RewardTiming):
            raise TypeError(f"timing must be a RewardTiming, got {type(timing).__name__}")
        self.timing = timing or RewardTiming()

    @abstractmethod
    def actions(self) -> tuple[Action, ...]:
        """Return the candidate actions, in a fixed order."""

    @abstractmethod
    def sample_context(self, rng: np.random.Generator, round_index: int) -> Namespaces:
        """Draw the context of the visitor of ``round_index``."""

    @abstractmethod
    def expected_rewards(self, context: Namespaces, round_index: int) -> np.ndarray:
        """Return the true expected reward in [0, 1] of every action, in :meth:`actions` order."""

    def segment(self, context: Namespaces) -> str:
        """Return the segment label of a context; one segment ``"all"`` by default."""
        return "all"

    def baseline_rules(self) -> BaselineRules | None:
        """Return the marketer's rules that the rules baseline follows.

        ``None`` (the default) makes the baseline choose the first action.
        """
        return None

    def slots(self) -> Mapping[str, tuple[Action, ...]] | None:
        """Return the actions of each slot, for one policy per slot; ``None`` if not sliced.

        A scenario whose actions combine one choice per slot (a wording, an
        image, a layout) returns the slot names with their variants, in the
        order :meth:`compose_action` expects them.
        """
        return None

    def compose_action(self, choices: Sequence[str]) -> str:
        """Return the combined action id of one variant id per slot, in slot order."""
        return "|".join(choices)

    def describe(self) -> dict[str, Any]:
        """Return the scenario's parameters as JSON-ready data, for the run summary."""
        return {"name": self.name, "timing": self.timing.__dict__.copy()}

    def stream(self, seed: int, rounds: int) -> VisitorStream:
        """Draw the visitor stream of ``rounds`` rounds for ``seed``.

        Raises
        ------
        ValueError
            If ``rounds`` is below 1, or a hook returns expected rewards of the
            wrong shape or outside [0, 1].
        """
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            raise TypeError(f"rounds must be an int, got {type(rounds).__name__}")
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")

        actions = validate_actions(self.actions())
        context_rng = np.random.default_rng(derive_seed(seed, self.name, "contexts"))
        outcome_rng = np.random.default_rng(derive_seed(seed, self.name, "outcomes"))

        contexts: list[Namespaces] = []
        expected = np.empty((rounds, len(actions)))
        segments: list[str] = []
        for t in range(rounds):
            context = validate_namespaces(self.sample_context(context_rng, t))
            row = np.asarray(self.expected_rewards(context, t), dtype=float)
            if row.shape != (len(actions),):
                raise ValueError(
                    f"{type(self).__name__}.expected_rewards returned shape {row.shape} in round {t}, "
                    f"expected ({len(actions)},)"
                )
            contexts.append(context)
            expected[t] = row
            segments.append(self.segment(context))
        if not np.all((expected >= 0.0) & (expected <= 1.0)):
            bad = expected[(expected < 0.0) | (expected > 1.0)][0]
            raise ValueError(f"{type(self).__name__}.expected_rewards returned {bad!r}, outside [0, 1]")

        draws = outcome_rng.random(rounds)
        delays, lost = self.timing.sample(outcome_rng, rounds)
        return VisitorStream(
            seed=seed,
            contexts=tuple(contexts),
            expected=expected,
            draws=draws,
            delays=delays,
            lost=lost,
            segments=tuple(segments),
            actions=actions,
        )


def check_same_actions(first: Sequence[Action], second: Sequence[Action], where: str) -> None:
    """Raise ``ValueError`` unless two action lists have the same ids in the same order."""
    first_ids = [a.id for a in first]
    second_ids = [a.id for a in second]
    if first_ids != second_ids:
        raise ValueError(f"{where}: action ids differ: {first_ids} versus {second_ids}")
