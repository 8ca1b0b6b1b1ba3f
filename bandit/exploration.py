"""Exploration strategies of ``--cb_explore_adf`` as frozen settings.

Each class holds only hyperparameters and turns them into VW arguments. VW
computes the probability mass function; the policy samples from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Exploration",
    "EpsilonGreedy",
    "SquareCB",
    "Bag",
    "Cover",
    "Softmax",
    "RegCB",
    "ExploreFirst",
    "EXPLORATIONS",
    "exploration_from_dict",
]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class Exploration:
    """Base class: one exploration strategy of VW's ``--cb_explore_adf``."""

    name = "base"

    def vw_args(self) -> list[str]:
        """Return the VW arguments that select this strategy."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, object]:
        """Return ``{"type": name, **hyperparameters}``."""
        return {"type": self.name, **self.__dict__}


@dataclass(frozen=True)
class EpsilonGreedy(Exploration):
    """Epsilon-greedy exploration.

    Notes
    -----
    ``p(a) = 1 - epsilon + epsilon / K`` for the greedy action and
    ``epsilon / K`` for each of the other ``K - 1`` actions. Simple and
    robust; wastes exploration on actions already known to be bad.
    Reference: J. Langford and T. Zhang, "The Epoch-Greedy Algorithm for
    Contextual Multi-armed Bandits", NeurIPS 2007.
    """

    epsilon: float = 0.05
    name = "epsilon_greedy"

    def __post_init__(self) -> None:
        _require(0.0 <= self.epsilon <= 1.0, f"epsilon must be in [0, 1], got {self.epsilon!r}")

    def vw_args(self) -> list[str]:
        return ["--epsilon", repr(float(self.epsilon))]


@dataclass(frozen=True)
class SquareCB(Exploration):
    """SquareCB: inverse-gap weighting of the predicted rewards.

    Notes
    -----
    With ``gamma = gamma_scale * t ** gamma_exponent`` at round ``t`` and the
    best predicted action ``b``, ``p(a) = 1 / (K + gamma * (c(a) - c(b)))``
    for ``a != b`` and the rest to ``b``. Explores less as the estimated gap
    grows; assumes the regression oracle is roughly well specified.
    Reference: D. Foster and A. Rakhlin, "Beyond UCB: Optimal and Efficient
    Contextual Bandits with Regression Oracles", ICML 2020.
    """

    gamma_scale: float = 10.0
    gamma_exponent: float = 0.5
    name = "squarecb"

    def __post_init__(self) -> None:
        _require(self.gamma_scale > 0, f"gamma_scale must be > 0, got {self.gamma_scale!r}")
        _require(self.gamma_exponent >= 0, f"gamma_exponent must be >= 0, got {self.gamma_exponent!r}")

    def vw_args(self) -> list[str]:
        return [
            "--squarecb",
            "--gamma_scale",
            repr(float(self.gamma_scale)),
            "--gamma_exponent",
            repr(float(self.gamma_exponent)),
        ]


@dataclass(frozen=True)
class Bag(Exploration):
    """Online bootstrap (bagging) of ``size`` greedy policies.

    Notes
    -----
    ``p(a)`` is the share of bootstrapped policies whose greedy action is
    ``a`` (plus ``epsilon`` uniform). Thompson-sampling-like; costs ``size``
    learners per example. Reference: D. Eckles and M. Kaptein, "Thompson
    sampling with the online bootstrap", arXiv:1410.4009, 2014.
    """

    size: int = 5
    epsilon: float = 0.0
    name = "bag"

    def __post_init__(self) -> None:
        _require(1 <= self.size <= 64, f"bag size must be in [1, 64], got {self.size!r}")
        _require(0.0 <= self.epsilon <= 1.0, f"epsilon must be in [0, 1], got {self.epsilon!r}")

    def vw_args(self) -> list[str]:
        return ["--bag", str(int(self.size)), "--epsilon", repr(float(self.epsilon))]


@dataclass(frozen=True)
class Cover(Exploration):
    """Online cover: a small set of policies trained to disagree.

    Notes
    -----
    ``p(a)`` mixes the ``size`` cover policies' choices with a floor of
    ``psi``-controlled uniform exploration. Strong on hard problems; costs
    ``size + 1`` learners per example. Reference: A. Agarwal, D. Hsu, S. Kale,
    J. Langford, L. Li and R. Schapire, "Taming the Monster: A Fast and Simple
    Algorithm for Contextual Bandits", ICML 2014.
    """

    size: int = 3
    psi: float = 1.0
    name = "cover"

    def __post_init__(self) -> None:
        _require(1 <= self.size <= 64, f"cover size must be in [1, 64], got {self.size!r}")
        _require(self.psi >= 0, f"psi must be >= 0, got {self.psi!r}")

    def vw_args(self) -> list[str]:
        return ["--cover", str(int(self.size)), "--psi", repr(float(self.psi))]


@dataclass(frozen=True)
class Softmax(Exploration):
    """Softmax (Boltzmann) exploration over predicted rewards.

    Notes
    -----
    ``p(a) proportional to exp(lambda * r_hat(a))`` with ``r_hat = -cost``.
    Large ``lambda`` approaches greedy. Sensitive to the reward scale.
    Reference: R. Sutton and A. Barto, "Reinforcement Learning: An
    Introduction", MIT Press, 1998, section 2.3.
    """

    lambda_: float = 10.0
    name = "softmax"

    def __post_init__(self) -> None:
        _require(math.isfinite(self.lambda_) and self.lambda_ >= 0, f"lambda_ must be >= 0, got {self.lambda_!r}")

    def vw_args(self) -> list[str]:
        return ["--softmax", "--lambda", repr(float(self.lambda_))]


@dataclass(frozen=True)
class RegCB(Exploration):
    """RegCB-Elim: exploration from confidence bounds of a regression oracle.

    Notes
    -----
    Plays uniformly over the actions whose cost confidence interval can still
    contain the best cost. Needs the cost range, which the policy derives from
    its reward range. Reference: D. Foster, A. Agarwal, M. Dudik, H. Luo and
    R. Schapire, "Practical Contextual Bandits with Regression Oracles",
    ICML 2018.

    NOTE: the optimistic variant (VW's ``--regcbopt``) is not offered: in
    vowpalwabbit 9.11.9 it returned "probabilities" that sum to the number
    of tied actions, which the PMF check rejects.
    """

    mellowness: float = 0.1
    name = "regcb"

    def __post_init__(self) -> None:
        _require(self.mellowness > 0, f"mellowness must be > 0, got {self.mellowness!r}")

    def vw_args(self) -> list[str]:
        return ["--regcb", "--mellowness", repr(float(self.mellowness))]


@dataclass(frozen=True)
class ExploreFirst(Exploration):
    """Explore uniformly for the first ``tau`` rounds, then act greedily.

    Notes
    -----
    The round counter is part of the model state and survives checkpoints.
    Does not adapt to drift after ``tau``. Reference: J. Langford and
    T. Zhang, "The Epoch-Greedy Algorithm for Contextual Multi-armed
    Bandits", NeurIPS 2007.
    """

    tau: int = 100
    name = "explore_first"

    def __post_init__(self) -> None:
        _require(self.tau >= 1, f"tau must be >= 1, got {self.tau!r}")

    def vw_args(self) -> list[str]:
        return ["--first", str(int(self.tau))]


EXPLORATIONS: dict[str, type[Exploration]] = {
    cls.name: cls for cls in (EpsilonGreedy, SquareCB, Bag, Cover, Softmax, RegCB, ExploreFirst)
}
"""Exploration classes by their ``type`` name."""


def exploration_from_dict(data: dict[str, object]) -> Exploration:
    """Build an exploration from ``{"type": name, **hyperparameters}``."""
    values = dict(data)
    kind = values.pop("type", None)
    cls = EXPLORATIONS.get(str(kind))
    if cls is None:
        raise ValueError(f"exploration type {kind!r} is unknown; use one of {sorted(EXPLORATIONS)}")
    try:
        return cls(**values)  # type: ignore[arg-type]
    except TypeError as error:
        raise ValueError(f"invalid hyperparameters for exploration {kind!r}: {error}") from error
