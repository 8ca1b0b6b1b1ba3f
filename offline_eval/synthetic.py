"""A seeded synthetic contextual bandit whose policy values are known exactly.

Contexts come from a finite set of cells (``segment`` x ``device``), so the
true value of any policy given as a cell-by-action matrix is a finite sum:

    V(pi) = sum_c P(c) sum_a pi(a | c) p(c, a)

with ``p(c, a)`` the click probability. Tests and benchmarks compare
estimates with this ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandit.features import Action

from offline_eval.data import LoggedData
from offline_eval.targets import FixedDistribution

__all__ = ["SyntheticBandit"]


@dataclass(frozen=True, eq=False)
class SyntheticBandit:
    """A finite-context Bernoulli bandit with a softmax logging policy.

    Parameters
    ----------
    n_segments, n_devices : int
        Context cells are (segment, device) pairs.
    n_actions : int
        Number of actions, all eligible in every round.
    seed : int
        Seeds the problem: cell probabilities, click probabilities, and
        logging scores.
    logging_temperature : float
        Softmax temperature of the logging policy over random scores; lower
        is greedier and gives heavier-tailed importance weights.
    min_propensity : float
        Floor mixed into the logging policy (``(1 - K m) softmax + m``).
    """

    n_segments: int = 3
    n_devices: int = 2
    n_actions: int = 4
    seed: int = 0
    logging_temperature: float = 1.0
    min_propensity: float = 0.02

    def __post_init__(self) -> None:
        if self.n_actions * self.min_propensity >= 1.0:
            raise ValueError(
                f"min_propensity {self.min_propensity} is too large for {self.n_actions} actions"
            )
        rng = np.random.default_rng(self.seed)
        cells = self.n_segments * self.n_devices
        cell_probability = rng.dirichlet(np.full(cells, 5.0))
        # Click logits are additive in (segment x action) and (device x action)
        # effects, the form of the default reward model, so DM is unbiased up
        # to regularization on this problem.
        segment_effect = rng.normal(0.0, 0.8, size=(self.n_segments, 1, self.n_actions))
        device_effect = rng.normal(0.0, 0.5, size=(1, self.n_devices, self.n_actions))
        logits = (-0.7 + segment_effect + device_effect).reshape(cells, self.n_actions)
        click = 1.0 / (1.0 + np.exp(-logits))
        scores = rng.normal(size=(cells, self.n_actions)) / self.logging_temperature
        softmax = np.exp(scores - scores.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        logging = (1.0 - self.n_actions * self.min_propensity) * softmax + self.min_propensity
        object.__setattr__(self, "cell_probability", cell_probability)
        object.__setattr__(self, "click_probability", click)
        object.__setattr__(self, "logging_policy", logging)

    @property
    def n_cells(self) -> int:
        """Number of context cells."""
        return self.n_segments * self.n_devices

    def true_value(self, policy: np.ndarray) -> float:
        """Return the exact value of a ``(cells, actions)`` policy matrix."""
        return float(self.cell_probability @ (policy * self.click_probability).sum(axis=1))

    def greedy_policy(self, epsilon: float = 0.0) -> np.ndarray:
        """Return epsilon-greedy on the true click probabilities, as a cell-by-action matrix."""
        best = np.argmax(self.click_probability, axis=1)
        policy = np.full((self.n_cells, self.n_actions), epsilon / self.n_actions)
        policy[np.arange(self.n_cells), best] += 1.0 - epsilon
        return policy

    def uniform_policy(self) -> np.ndarray:
        """Return the uniform policy matrix."""
        return np.full((self.n_cells, self.n_actions), 1.0 / self.n_actions)

    def sample_arrays(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """Draw ``n`` logged rounds as arrays: ``cell``, ``action``, ``propensity``, ``reward``."""
        rng = np.random.default_rng(seed)
        cell = rng.choice(self.n_cells, size=n, p=self.cell_probability)
        cumulative = np.cumsum(self.logging_policy[cell], axis=1)
        action = (rng.random(n)[:, None] > cumulative).sum(axis=1)
        action = np.minimum(action, self.n_actions - 1)
        propensity = self.logging_policy[cell, action]
        reward = (rng.random(n) < self.click_probability[cell, action]).astype(np.float64)
        return {"cell": cell, "action": action, "propensity": propensity, "reward": reward}

    def sample(self, n: int, seed: int) -> LoggedData:
        """Draw ``n`` logged rounds as :class:`LoggedData` (with the logging PMF)."""
        arrays = self.sample_arrays(n, seed)
        cell = arrays["cell"]
        contexts = pd.DataFrame(
            {
                "user.segment": [f"s{c // self.n_devices}" for c in cell],
                "user.device": [("mobile", "desktop", "tablet", "tv")[c % self.n_devices % 4] for c in cell],
            }
        )
        return LoggedData.from_arrays(
            contexts=contexts,
            actions=[Action(f"a{k}", {}) for k in range(self.n_actions)],
            action_index=np.tile(np.arange(self.n_actions, dtype=np.int32), (n, 1)),
            logged_slot=arrays["action"],
            propensity=arrays["propensity"],
            reward=arrays["reward"],
            timestamp=np.arange(n, dtype=np.float64),
            logging_pmf=self.logging_policy[cell],
            source=f"synthetic bandit (seed {self.seed}, sample seed {seed})",
        )

    def cells_of(self, data: LoggedData) -> np.ndarray:
        """Return the context cell of every row of a sample drawn by :meth:`sample`."""
        segment = data.contexts["user.segment"].str[1:].astype(int).to_numpy()
        devices = {name: i for i, name in enumerate(("mobile", "desktop", "tablet", "tv")[: self.n_devices])}
        device = data.contexts["user.device"].map(devices).to_numpy(dtype=int)
        return segment * self.n_devices + device

    def target(self, policy: np.ndarray, data: LoggedData, name: str) -> FixedDistribution:
        """Return a cell-by-action policy matrix as a per-row target on a sample."""
        return FixedDistribution(probabilities=policy[self.cells_of(data)], name=name)
