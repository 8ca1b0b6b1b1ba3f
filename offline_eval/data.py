"""The typed, validated container of logged bandit data.

Every reader (event log, plain table, Open Bandit Dataset) ends in
:meth:`LoggedData.from_arrays`, which is the one place where logged data is
checked. Code after it trusts the container.

Layout: ``n`` logged rounds. Each round has an ordered set of eligible
actions, stored as a padded ``(n, k)`` integer matrix of indices into the
action vocabulary (``-1`` pads rows with fewer than ``k`` actions). The logged
action is a column ("slot") of that matrix. Contexts are a DataFrame with one
column per feature, named ``namespace.feature``; a missing feature is null.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from bandit.features import Action, FeatureValue

__all__ = ["LoggedData", "flatten_context", "POSITION_NAMESPACE"]

logger = logging.getLogger(__name__)

POSITION_NAMESPACE = "position"
"""Namespace under which the display position joins the context (feature ``position``)."""


def flatten_context(context: Mapping[str, Mapping[str, FeatureValue]]) -> dict[str, FeatureValue]:
    """Flatten ``{namespace: {feature: value}}`` to ``{"namespace.feature": value}``.

    Namespace names never contain a dot, so the first dot separates the two
    parts and the mapping is reversible even when a feature name has dots.
    """
    return {f"{ns}.{name}": value for ns, features in context.items() for name, value in features.items()}


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _row_label(row_labels: np.ndarray | None, index: int) -> str:
    if row_labels is None:
        return f"row {index}"
    return f"row {row_labels[index]}"


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged bandit rounds, validated.

    Build it with :meth:`from_arrays` (or a reader); the constructor itself
    does not validate.

    Parameters
    ----------
    contexts : pandas.DataFrame
        ``n`` rows, one column per context feature (``namespace.feature``).
    actions : tuple of Action
        Action vocabulary; ``action_index`` points into it.
    action_index : numpy.ndarray of int32, shape (n, k)
        Eligible actions of each round in scoring order, ``-1`` as padding.
    logged_slot : numpy.ndarray of int64, shape (n,)
        Column of ``action_index`` holding the logged (chosen) action.
    propensity : numpy.ndarray of float64, shape (n,)
        Probability with which the logging policy chose the logged action.
    reward : numpy.ndarray of float64, shape (n,)
        Observed (or default) reward of the logged action.
    position : numpy.ndarray of int64, shape (n,), optional
        Display position (0-based); part of the context.
    timestamp : numpy.ndarray of float64, shape (n,), optional
        Decision time, seconds since the Unix epoch; rows are in time order.
    logging_pmf : numpy.ndarray of float64, shape (n, k), optional
        The logging policy's full PMF aligned with ``action_index`` (0 at
        padding), when the log has it.
    event_ids : numpy.ndarray of object, shape (n,), optional
        Event ids, when the log has them.
    skipped : Mapping[str, int]
        Rows deliberately left out by the reader, counted by reason.
    source : str
        Human-readable description of where the data came from.
    """

    contexts: pd.DataFrame
    actions: tuple[Action, ...]
    action_index: np.ndarray
    logged_slot: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    position: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    logging_pmf: np.ndarray | None = None
    event_ids: np.ndarray | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = ""

    # ------------------------------------------------------------------ build
    @classmethod
    def from_arrays(
        cls,
        *,
        contexts: pd.DataFrame | Sequence[Mapping[str, Mapping[str, FeatureValue]]] | None,
        actions: Sequence[Action],
        action_index: np.ndarray,
        logged_slot: np.ndarray,
        propensity: np.ndarray,
        reward: np.ndarray,
        position: np.ndarray | None = None,
        timestamp: np.ndarray | None = None,
        logging_pmf: np.ndarray | None = None,
        event_ids: Sequence[str] | np.ndarray | None = None,
        skipped: Mapping[str, int] | None = None,
        source: str = "",
        row_labels: np.ndarray | None = None,
    ) -> LoggedData:
        """Validate arrays into a :class:`LoggedData`.

        Parameters
        ----------
        contexts : DataFrame or sequence of namespaces, optional
            One context per row; ``None`` means no context features.
        actions, action_index, logged_slot, propensity, reward, position, timestamp, logging_pmf, event_ids, skipped, source
            As the class attributes.
        row_labels : numpy.ndarray, optional
            How error messages number the rows (for example the row numbers
            of the input file); defaults to ``0 .. n-1``.

        Raises
        ------
        TypeError
            If an argument has the wrong type.
        ValueError
            If the log is empty, a propensity is not in (0, 1], a reward is
            not finite, a logged slot points outside the row's action set,
            and so on. The message names the row and the column.
        """
        actions = tuple(actions)
        for action in actions:
            if not isinstance(action, Action):
                raise TypeError(f"actions must be Action instances, got {type(action).__name__}")
        action_index = np.asarray(action_index)
        if action_index.ndim != 2:
            raise ValueError(f"action_index must be a 2-d matrix (rows x slots), got shape {action_index.shape}")
        n = action_index.shape[0]
        if n == 0:
            raise ValueError("logged data is empty: there are no rows to evaluate on")
        if not np.issubdtype(action_index.dtype, np.integer):
            raise TypeError(f"action_index must hold integers, got dtype {action_index.dtype}")
        action_index = action_index.astype(np.int32, copy=False)

        def vector(name: str, values: Any, dtype: Any) -> np.ndarray:
            array = np.asarray(values)
            if array.shape != (n,):
                raise ValueError(f"column {name!r} must have one value per row ({n}), got shape {array.shape}")
            try:
                return array.astype(dtype)
            except (TypeError, ValueError) as error:
                raise TypeError(f"column {name!r} must be numeric, got dtype {array.dtype}") from error

        logged_slot = vector("logged_slot", logged_slot, np.int64)
        propensity = vector("probability", propensity, np.float64)
        reward = vector("reward", reward, np.float64)
        labels = None if row_labels is None else np.asarray(row_labels)

        bad = (action_index < -1) | (action_index >= len(actions))
        if bad.any():
            row = _first_bad(bad.any(axis=1))
            raise ValueError(f"{_row_label(labels, row)}, column 'actions': action index outside the vocabulary")
        valid = action_index >= 0
        counts = valid.sum(axis=1)
        if (counts == 0).any():
            row = _first_bad(counts == 0)
            raise ValueError(f"{_row_label(labels, row)}, column 'actions': the action set is empty")
        if not (valid[:, :-1] >= valid[:, 1:]).all():
            row = _first_bad((valid[:, :-1] < valid[:, 1:]).any(axis=1))
            raise ValueError(f"{_row_label(labels, row)}, column 'actions': padding (-1) must come after all actions")
        sorted_ids = np.sort(np.where(valid, action_index, -1 - np.arange(action_index.shape[1])), axis=1)
        duplicate = (sorted_ids[:, 1:] == sorted_ids[:, :-1]) & (sorted_ids[:, 1:] >= 0)
        if duplicate.any():
            row = _first_bad(duplicate.any(axis=1))
            raise ValueError(f"{_row_label(labels, row)}, column 'actions': an action appears twice in the action set")

        bad = (logged_slot < 0) | (logged_slot >= counts)
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(
                f"{_row_label(labels, row)}, column 'chosen_action': the chosen action is not in the row's action set"
                f" ({bad.sum()} such rows)"
            )
        bad = ~(np.isfinite(propensity) & (propensity > 0) & (propensity <= 1))
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(
                f"{_row_label(labels, row)}, column 'probability': a propensity must be in (0, 1],"
                f" got {float(propensity[row])!r} ({bad.sum()} such rows)"
            )
        bad = ~np.isfinite(reward)
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(
                f"{_row_label(labels, row)}, column 'reward': a reward must be a finite number,"
                f" got {float(reward[row])!r} ({bad.sum()} such rows)"
            )

        if position is not None:
            position = vector("position", position, np.int64)
            if (position < 0).any():
                row = _first_bad(position < 0)
                raise ValueError(f"{_row_label(labels, row)}, column 'position': must be >= 0, got {position[row]}")
        if timestamp is not None:
            timestamp = vector("timestamp", timestamp, np.float64)
            if not np.isfinite(timestamp).all():
                row = _first_bad(~np.isfinite(timestamp))
                raise ValueError(f"{_row_label(labels, row)}, column 'timestamp': missing or not finite")
            if (np.diff(timestamp) < 0).any():
                order = np.argsort(timestamp, kind="stable")
                logger.info("sorting %d rows by timestamp", n)
                return cls.from_arrays(
                    contexts=_take_contexts(contexts, order),
                    actions=actions,
                    action_index=action_index[order],
                    logged_slot=logged_slot[order],
                    propensity=propensity[order],
                    reward=reward[order],
                    position=None if position is None else position[order],
                    timestamp=timestamp[order],
                    logging_pmf=None if logging_pmf is None else np.asarray(logging_pmf)[order],
                    event_ids=None if event_ids is None else np.asarray(event_ids, dtype=object)[order],
                    skipped=skipped,
                    source=source,
                    row_labels=(np.arange(n) if labels is None else labels)[order],
                )
        if logging_pmf is not None:
            logging_pmf = np.asarray(logging_pmf, dtype=np.float64)
            if logging_pmf.shape != action_index.shape:
                raise ValueError(
                    f"column 'pmf' must have shape {action_index.shape} like the action sets, got {logging_pmf.shape}"
                )
            bad_entry = ~np.isfinite(logging_pmf) | (logging_pmf < 0) | (logging_pmf > 1) | (~valid & (logging_pmf != 0))
            bad_sum = np.abs(logging_pmf.sum(axis=1) - 1.0) > 1e-6
            bad = bad_entry.any(axis=1) | bad_sum
            if bad.any():
                row = _first_bad(bad)
                raise ValueError(
                    f"{_row_label(labels, row)}, column 'pmf': entries must be in [0, 1] and sum to 1 within 1e-6,"
                    f" got sum {float(logging_pmf[row].sum())!r}"
                )
            logged_pmf = logging_pmf[np.arange(n), logged_slot]
            bad = np.abs(logged_pmf - propensity) > 1e-6
            if bad.any():
                row = _first_bad(bad)
                raise ValueError(
                    f"{_row_label(labels, row)}, column 'probability': {float(propensity[row])!r} differs from the PMF entry"
                    f" of the chosen action ({float(logged_pmf[row])!r})"
                )
        if event_ids is not None:
            event_ids = np.asarray(event_ids, dtype=object)
            if event_ids.shape != (n,):
                raise ValueError(f"column 'event_id' must have one value per row ({n}), got shape {event_ids.shape}")

        frame = _context_frame(contexts, n)
        clean_skipped = {str(k): int(v) for k, v in (skipped or {}).items() if int(v) > 0}
        return cls(
            contexts=frame,
            actions=actions,
            action_index=action_index,
            logged_slot=logged_slot,
            propensity=propensity,
            reward=reward,
            position=position,
            timestamp=timestamp,
            logging_pmf=logging_pmf,
            event_ids=event_ids,
            skipped=MappingProxyType(clean_skipped),
            source=source,
        )

    # ------------------------------------------------------------- accessors
    @property
    def n_rows(self) -> int:
        """Number of logged rounds."""
        return int(self.action_index.shape[0])

    @property
    def n_slots(self) -> int:
        """Width of the padded action matrix (largest action set)."""
        return int(self.action_index.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """Boolean ``(n, k)`` mask of real (not padding) action slots."""
        return self.action_index >= 0

    @property
    def logged_action(self) -> np.ndarray:
        """Vocabulary index of the logged action of each row."""
        return self.action_index[np.arange(self.n_rows), self.logged_slot]

    @property
    def action_ids(self) -> tuple[str, ...]:
        """Action ids of the vocabulary, in vocabulary order."""
        return tuple(a.id for a in self.actions)

    def row_actions(self, row: int) -> tuple[Action, ...]:
        """Return the eligible actions of one row, in scoring order."""
        indices = self.action_index[row]
        return tuple(self.actions[i] for i in indices[indices >= 0])

    def context_namespaces(self, row: int) -> dict[str, dict[str, FeatureValue]]:
        """Return the context of one row as namespaces, the position included."""
        namespaces: dict[str, dict[str, FeatureValue]] = {}
        values = self.contexts.iloc[row]
        for column, value in values.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            ns, _, name = str(column).partition(".")
            if isinstance(value, np.generic):
                value = value.item()
            namespaces.setdefault(ns, {})[name] = value
        if self.position is not None:
            namespaces[POSITION_NAMESPACE] = {"position": str(int(self.position[row]))}
        return namespaces

    def segment_values(self, column: str) -> np.ndarray:
        """Return the values of a segment column: a context feature or ``position``.

        Raises
        ------
        KeyError
            If neither the contexts nor the position have that column.
        """
        if column == "position" and self.position is not None:
            return self.position.astype(str)
        if column in self.contexts.columns:
            return self.contexts[column].astype(str).to_numpy()
        matches = [c for c in self.contexts.columns if str(c).partition(".")[2] == column]
        if len(matches) == 1:
            return self.contexts[matches[0]].astype(str).to_numpy()
        raise KeyError(
            f"segment column {column!r} not found: use one of {sorted(map(str, self.contexts.columns))[:20]}"
            + (" or 'position'" if self.position is not None else "")
        )

    def subset(self, rows: np.ndarray) -> LoggedData:
        """Return the rows selected by an index or boolean array (no re-validation)."""
        rows = np.asarray(rows)
        return LoggedData(
            contexts=self.contexts.iloc[rows].reset_index(drop=True),
            actions=self.actions,
            action_index=self.action_index[rows],
            logged_slot=self.logged_slot[rows],
            propensity=self.propensity[rows],
            reward=self.reward[rows],
            position=None if self.position is None else self.position[rows],
            timestamp=None if self.timestamp is None else self.timestamp[rows],
            logging_pmf=None if self.logging_pmf is None else self.logging_pmf[rows],
            event_ids=None if self.event_ids is None else self.event_ids[rows],
            skipped=self.skipped,
            source=self.source,
        )

    def summary(self) -> dict[str, Any]:
        """Return counts and ranges that describe the log, for reports."""
        return {
            "source": self.source,
            "rows": self.n_rows,
            "actions": len(self.actions),
            "max_action_set": self.n_slots,
            "propensity_min": float(self.propensity.min()),
            "propensity_max": float(self.propensity.max()),
            "reward_mean": float(self.reward.mean()),
            "reward_min": float(self.reward.min()),
            "reward_max": float(self.reward.max()),
            "positions": None if self.position is None else int(self.position.max()) + 1,
            "skipped": dict(self.skipped),
        }


def _take_contexts(contexts: Any, order: np.ndarray) -> Any:
    if contexts is None:
        return None
    if isinstance(contexts, pd.DataFrame):
        return contexts.iloc[order].reset_index(drop=True)
    return [contexts[i] for i in order]


def _context_frame(contexts: Any, n: int) -> pd.DataFrame:
    if contexts is None:
        return pd.DataFrame(index=pd.RangeIndex(n))
    if isinstance(contexts, pd.DataFrame):
        if len(contexts) != n:
            raise ValueError(f"contexts must have one row per logged row ({n}), got {len(contexts)}")
        for column in contexts.columns:
            if not isinstance(column, str) or "." not in column:
                raise ValueError(f"context column {column!r} must be named 'namespace.feature'")
        return contexts.reset_index(drop=True)
    if isinstance(contexts, (str, bytes)) or not isinstance(contexts, Sequence):
        raise TypeError(f"contexts must be a DataFrame or a sequence of namespaces, got {type(contexts).__name__}")
    if len(contexts) != n:
        raise ValueError(f"contexts must have one entry per logged row ({n}), got {len(contexts)}")
    return pd.DataFrame.from_records([flatten_context(c) for c in contexts], index=pd.RangeIndex(n))
