"""Target policies: the policies whose value is estimated from a log.

Each target turns a :class:`~offline_eval.data.LoggedData` into a ``(n, k)``
matrix of action probabilities aligned with ``data.action_index`` (0 at
padding). :func:`check_distribution` validates it once; estimators trust it.

Targets:

- :class:`UniformRandom`: every eligible action equally likely.
- :class:`LoggingPolicy`: the logging policy itself (on-policy mean).
- :class:`FixedDistribution`: a given per-row matrix.
- :class:`ActionPositionDistribution`: a context-free distribution per
  action and position (the Open Bandit Dataset's evaluation policy).
- :class:`BaselineTarget`: the policy's baseline (first eligible action or
  declarative rules), deterministic.
- :class:`CheckpointTarget`: a saved VW policy, scored on every logged context.
- :class:`CounterfactualVW`: a candidate VW configuration trained on the log
  in time order, each event scored before it is learned from.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bandit.baseline import BaselineRules, choose_baseline
from bandit.events import DecisionRecord, JoinedEvent, JoinOutcome, LearningMode
from bandit.exploration import exploration_from_dict
from bandit.policy import Policy
from bandit.settings import PolicySettings

from offline_eval.data import LoggedData

__all__ = [
    "TargetPolicy",
    "UniformRandom",
    "LoggingPolicy",
    "FixedDistribution",
    "ActionPositionDistribution",
    "BaselineTarget",
    "CheckpointTarget",
    "CounterfactualVW",
    "check_distribution",
    "settings_from_checkpoint",
    "parse_probability_table",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
PROGRESS_STEP = 1000
"""Rows scored between two progress callbacks of row-by-row targets."""


def _report_progress(progress: Progress | None, row: int, n_rows: int) -> None:
    """Call ``progress`` every :data:`PROGRESS_STEP` rows and once for the remainder at the end."""
    if progress is None:
        return
    done = row + 1
    if done % PROGRESS_STEP == 0:
        progress(PROGRESS_STEP)
    elif done == n_rows:
        progress(done % PROGRESS_STEP)


class TargetPolicy(ABC):
    """A policy to evaluate; subclasses implement :meth:`distribution`."""

    name: str

    @abstractmethod
    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        """Return the ``(n, k)`` action probabilities of every logged row.

        Entries are NaN where the target's probability is unknown (only
        :class:`LoggingPolicy` without a logged PMF); ``progress`` is called
        with the number of rows done, for targets that score row by row.
        """

    def describe(self) -> str:
        """Return a one-line description for reports."""
        return type(self).__name__


def check_distribution(name: str, probabilities: np.ndarray, data: LoggedData) -> np.ndarray:
    """Validate a target's matrix against the log's action sets.

    Raises
    ------
    ValueError
        If the shape differs, a known entry is outside [0, 1], padding has
        mass, or a fully known row does not sum to 1 within 1e-6. The message
        names the target and the row.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != data.action_index.shape:
        raise ValueError(
            f"target {name!r} returned probabilities of shape {probabilities.shape},"
            f" expected {data.action_index.shape} (rows x action slots)"
        )
    known = ~np.isnan(probabilities)
    logged_known = known[np.arange(data.n_rows), data.logged_slot]
    if not logged_known.all():
        row = int(np.flatnonzero(~logged_known)[0])
        raise ValueError(f"target {name!r}: row {row} has no probability for the logged action")
    values = np.where(known, probabilities, 0.0)
    bad = ((values < 0) | (values > 1) | (~data.valid & (values != 0))).any(axis=1)
    full = known.all(axis=1)
    bad |= full & (np.abs(values.sum(axis=1) - 1.0) > 1e-6)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"target {name!r}: row {row} is not a probability distribution over its action set"
            f" (entries in [0, 1], zero at padding, sum 1 within 1e-6); got sum {float(values[row].sum())!r}"
        )
    return probabilities


@dataclass(frozen=True)
class UniformRandom(TargetPolicy):
    """Every eligible action with probability ``1 / |action set|``."""

    name: str = "uniform"

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        valid = data.valid
        return valid / valid.sum(axis=1, keepdims=True)

    def describe(self) -> str:
        return "uniform random over the eligible actions"


@dataclass(frozen=True)
class LoggingPolicy(TargetPolicy):
    """The logging policy itself; its value is the on-policy mean reward.

    Without a logged PMF only the logged action's probability is known, so the
    other entries are NaN and estimators that need the full distribution (DM
    and the DR family) report themselves undefined.
    """

    name: str = "logging"

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        if data.logging_pmf is not None:
            return data.logging_pmf.copy()
        result = np.full(data.action_index.shape, np.nan)
        result[~data.valid] = 0.0
        result[np.arange(data.n_rows), data.logged_slot] = data.propensity
        return result

    def describe(self) -> str:
        return "the logging policy (on-policy mean)"


@dataclass(frozen=True, eq=False)
class FixedDistribution(TargetPolicy):
    """A fixed per-row matrix aligned with the log's action sets.

    Parameters
    ----------
    probabilities : numpy.ndarray, shape (n, k)
        Rows sum to 1 over each row's eligible actions.
    name : str
        Report name.
    """

    probabilities: np.ndarray
    name: str = "fixed"

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        return np.asarray(self.probabilities, dtype=np.float64)

    def describe(self) -> str:
        return "a fixed per-row action distribution"


@dataclass(frozen=True, eq=False)
class ActionPositionDistribution(TargetPolicy):
    """A context-free distribution per action id and display position.

    Row ``i`` gets ``pi(a) ∝ table[a][position_i]`` over its eligible actions
    (renormalized over them when the action set is a subset of the table's
    actions). Without positions in the log, column 0 applies.

    Parameters
    ----------
    action_ids : sequence of str
        Row labels of ``table``.
    table : numpy.ndarray, shape (n_actions, n_positions)
        Nonnegative weights; each column is usually a distribution.
    name : str
        Report name.

    Raises
    ------
    ValueError
        From :meth:`distribution`, if an action of the log is missing from
        the table or a row's eligible actions all have weight 0.
    """

    action_ids: Sequence[str]
    table: np.ndarray
    name: str = "fixed"

    def __post_init__(self) -> None:
        table = np.asarray(self.table, dtype=np.float64)
        if table.ndim != 2 or table.shape[0] != len(self.action_ids):
            raise ValueError(
                f"table must have shape (actions={len(self.action_ids)}, positions), got {table.shape}"
            )
        if not np.isfinite(table).all() or (table < 0).any():
            raise ValueError("table entries must be finite and >= 0")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "action_ids", tuple(self.action_ids))

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        row_of = {action_id: i for i, action_id in enumerate(self.action_ids)}
        vocabulary_rows = np.array([row_of.get(a, -1) for a in data.action_ids])
        used = np.unique(data.action_index[data.valid])
        missing = [data.action_ids[i] for i in used if vocabulary_rows[i] < 0]
        if missing:
            raise ValueError(f"target {self.name!r} has no probabilities for actions {missing[:10]}")
        position = np.zeros(data.n_rows, np.int64) if data.position is None else data.position
        if position.max() >= self.table.shape[1]:
            raise ValueError(
                f"target {self.name!r} covers {self.table.shape[1]} positions but the log has position {position.max()}"
            )
        table_rows = vocabulary_rows[np.where(data.valid, data.action_index, 0)]
        weights = np.where(data.valid, self.table[table_rows, position[:, None]], 0.0)
        totals = weights.sum(axis=1, keepdims=True)
        if (totals == 0).any():
            row = int(np.flatnonzero(totals[:, 0] == 0)[0])
            raise ValueError(f"target {self.name!r} gives weight 0 to every eligible action of row {row}")
        return weights / totals

    def describe(self) -> str:
        return f"a context-free distribution over {len(self.action_ids)} actions and {self.table.shape[1]} positions"


@dataclass(frozen=True)
class BaselineTarget(TargetPolicy):
    """The baseline: the rules' action, or the first eligible action without rules."""

    rules: BaselineRules | None = None
    name: str = "baseline"

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        result = np.zeros(data.action_index.shape)
        if self.rules is None:
            result[:, 0] = 1.0
            return result
        for row in range(data.n_rows):
            ids = [a.id for a in data.row_actions(row)]
            chosen = choose_baseline(self.rules, data.context_namespaces(row), ids)
            result[row, ids.index(chosen)] = 1.0
            _report_progress(progress, row, data.n_rows)
        return result

    def describe(self) -> str:
        return "baseline: first eligible action" if self.rules is None else "baseline: declarative rules"


def settings_from_checkpoint(data: bytes) -> PolicySettings:
    """Rebuild the model settings a checkpoint was saved with, from its header."""
    header, _ = Policy.read_checkpoint_header(data)
    signature = header["signature"]
    return PolicySettings(
        name=str(header.get("policy") or "checkpoint"),
        exploration=exploration_from_dict(dict(signature["exploration"])),
        interactions=tuple(tuple(g) for g in signature["interactions"]),
        vw_args=tuple(signature["vw_args"]),
        bit_precision=int(signature["bit_precision"]),
        reward_range=tuple(signature["reward_range"]),  # type: ignore[arg-type]
    )


def _row_pmf(policy: Policy, data: LoggedData, row: int) -> np.ndarray:
    actions = data.row_actions(row)
    pmf = policy.pmf(data.context_namespaces(row), actions)
    result = np.zeros(data.n_slots)
    result[: len(actions)] = [pmf[a.id] for a in actions]
    return result


@dataclass(frozen=True)
class CheckpointTarget(TargetPolicy):
    """A saved VW policy (a file written by ``Policy.save``), scored on each logged context.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    settings : PolicySettings, optional
        Settings to restore with; by default they are rebuilt from the
        checkpoint's header.
    name : str
        Report name.
    """

    path: str | Path
    settings: PolicySettings | None = None
    name: str = "checkpoint"

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        raw = Path(self.path).read_bytes()
        settings = self.settings or settings_from_checkpoint(raw)
        policy = Policy.from_checkpoint(raw, settings)
        try:
            result = np.zeros(data.action_index.shape)
            for row in range(data.n_rows):
                result[row] = _row_pmf(policy, data, row)
                _report_progress(progress, row, data.n_rows)
        finally:
            policy.close()
        return result

    def describe(self) -> str:
        return f"VW checkpoint {self.path}"


@dataclass(frozen=True)
class CounterfactualVW(TargetPolicy):
    """A candidate VW configuration trained on the log in time order.

    Each row is first scored (its PMF recorded as the target's distribution
    for that row), then learned from with the logged action, propensity and
    reward, exactly as the server's learner would have done had it logged
    this data. This is progressive validation: every row is scored by a
    model that has not seen it.

    Parameters
    ----------
    settings : PolicySettings
        The candidate's settings (exploration, interactions, VW arguments).
    name : str
        Report name; defaults to the settings' name.
    final_checkpoint : dict of str to bytes
        Filled by :meth:`distribution`: key ``"model"`` holds the checkpoint
        of the model after the last row, for :class:`CheckpointTarget` or
        deployment. Its value estimated on the same log is optimistic,
        because that model has seen every row.
    """

    settings: PolicySettings
    name: str = ""
    final_checkpoint: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.settings.name)

    def distribution(self, data: LoggedData, progress: Progress | None = None) -> np.ndarray:
        policy = Policy(self.settings)
        result = np.zeros(data.action_index.shape)
        timestamps = data.timestamp if data.timestamp is not None else np.arange(data.n_rows, dtype=np.float64)
        try:
            for row in range(data.n_rows):
                actions = data.row_actions(row)
                context = data.context_namespaces(row)
                pmf = policy.pmf(context, actions)
                result[row, : len(actions)] = [pmf[a.id] for a in actions]
                ids = tuple(a.id for a in actions)
                decision = DecisionRecord(
                    event_id=f"row-{row}",
                    policy=self.settings.name,
                    timestamp=float(timestamps[row]),
                    context=context,
                    actions=actions,
                    excluded_ids=(),
                    action_ids=ids,
                    pmf=() if data.logging_pmf is None else tuple(data.logging_pmf[row, : len(ids)]),
                    chosen_action=ids[int(data.logged_slot[row])],
                    probability=float(data.propensity[row]),
                    model_version=0,
                    learning_mode=LearningMode.ONLINE,
                )
                policy.learn(JoinedEvent(decision, float(data.reward[row]), JoinOutcome.OBSERVED, 1, decision.timestamp))
                _report_progress(progress, row, data.n_rows)
            self.final_checkpoint["model"] = policy.to_checkpoint()
        finally:
            policy.close()
        return result

    def describe(self) -> str:
        return "VW configuration trained counterfactually: " + " ".join(self.settings.vw_command())


def parse_probability_table(mapping: Mapping[str, Sequence[float]], name: str) -> ActionPositionDistribution:
    """Build an :class:`ActionPositionDistribution` from ``{action_id: [p_pos0, p_pos1, ...]}``."""
    if not mapping:
        raise ValueError(f"target {name!r}: the probability table is empty")
    widths = {len(v) for v in mapping.values()}
    if len(widths) != 1:
        raise ValueError(f"target {name!r}: every action needs the same number of positions, got {sorted(widths)}")
    ids = list(mapping)
    table = np.array([[float(p) for p in mapping[a]] for a in ids])
    if not np.isfinite(table).all() or math.isnan(float(table.sum())):
        raise ValueError(f"target {name!r}: probabilities must be finite")
    return ActionPositionDistribution(action_ids=ids, table=table, name=name)
