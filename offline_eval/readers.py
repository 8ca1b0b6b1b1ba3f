"""Readers that turn logs into :class:`~offline_eval.data.LoggedData`.

- :func:`read_event_log`: the project's own event log (joined rows of a log
  directory, or a Parquet file with the event schema).
- :func:`read_table`: a plain table (Parquet or CSV) with the columns
  ``context``, ``actions``, ``chosen_action``, ``probability``, ``reward``
  and optionally ``position``, ``timestamp``, ``pmf``, ``event_id``.
- :func:`read_dsjson`: an Azure Personalizer DSJSON log.
- :func:`read_log`: picks one of the above (or the Open Bandit Dataset) from
  a path or ``obd:POLICY/CAMPAIGN``.

Contexts are JSON objects of namespaces (``{"user": {"device": "mobile"}}``).
Actions are a JSON list of ids or of ``{"id": ..., "features": {...}}``
objects. Lists may also be native Parquet lists.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit.eventlog import list_segments, read_events
from bandit.events import EVENT_SCHEMA
from bandit.features import Action, validate_namespaces
from bandit.maintenance import import_dsjson

from offline_eval.data import LoggedData, flatten_context

__all__ = ["read_event_log", "read_dsjson", "read_table", "table_to_logged_data", "read_log", "TABLE_COLUMNS"]

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("context", "actions", "chosen_action", "probability", "reward")
"""Required columns of a plain table."""
DSJSON_SUFFIXES = (".json", ".jsonl", ".dsjson")
"""File name endings read as Azure Personalizer DSJSON logs."""


class _ActionVocabulary:
    """Action ids seen so far, mapped to vocabulary indices."""

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.index: dict[str, int] = {}
        self.conflicts = 0

    def add(self, action: Action) -> int:
        position = self.index.get(action.id)
        if position is None:
            position = len(self.actions)
            self.index[action.id] = position
            self.actions.append(action)
        elif self.actions[position].features != action.features:
            self.conflicts += 1
        return position


def _decode_json(value: Any, row: int, column: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"row {row}, column {column!r}: invalid JSON ({error.msg})") from error
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"row {row}, column {column!r}: missing value")
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _parse_actions(value: Any, row: int, column: str) -> list[Action]:
    items = _decode_json(value, row, column)
    if not isinstance(items, list):
        raise ValueError(f"row {row}, column {column!r}: expected a list of actions, got {type(items).__name__}")
    if not items:
        raise ValueError(f"row {row}, column {column!r}: the action set is empty")
    actions = []
    for item in items:
        try:
            if isinstance(item, str):
                actions.append(Action(item, {}))
            elif isinstance(item, dict) and "id" in item:
                actions.append(Action(str(item["id"]), item.get("features") or {}))
            else:
                raise TypeError(f"an action must be an id or an object with 'id', got {item!r:.60}")
        except (TypeError, ValueError) as error:
            raise ValueError(f"row {row}, column {column!r}: {error}") from error
    return actions


def _build(
    contexts: list[dict[str, Any]],
    eligible: list[list[int]],
    chosen: list[int],
    vocabulary: _ActionVocabulary,
    frame: dict[str, Any],
    skipped: dict[str, int],
    source: str,
    labels: np.ndarray,
    pmfs: list[list[float]] | None,
) -> LoggedData:
    n = len(eligible)
    width = max((len(e) for e in eligible), default=0)
    action_index = np.full((n, width), -1, np.int32)
    for i, row_actions in enumerate(eligible):
        action_index[i, : len(row_actions)] = row_actions
    logging_pmf = None
    if pmfs is not None:
        logging_pmf = np.zeros((n, width))
        for i, values in enumerate(pmfs):
            if len(values) != len(eligible[i]):
                raise ValueError(
                    f"row {labels[i]}, column 'pmf': has {len(values)} entries for {len(eligible[i])} eligible actions"
                )
            logging_pmf[i, : len(values)] = values
    if vocabulary.conflicts:
        logger.warning(
            "%d rows list an action id with features other than its first occurrence; the first features are used",
            vocabulary.conflicts,
        )
    return LoggedData.from_arrays(
        contexts=pd.DataFrame.from_records(contexts, index=pd.RangeIndex(n)) if contexts else None,
        actions=vocabulary.actions,
        action_index=action_index,
        logged_slot=np.asarray(chosen, np.int64),
        propensity=frame["probability"],
        reward=frame["reward"],
        position=frame.get("position"),
        timestamp=frame.get("timestamp"),
        logging_pmf=logging_pmf,
        event_ids=frame.get("event_id"),
        skipped=skipped,
        source=source,
        row_labels=labels,
    )


def _numeric(values: Any, column: str, labels: np.ndarray) -> np.ndarray:
    series = pd.Series(values)
    numbers = pd.to_numeric(series, errors="coerce")
    bad = numbers.isna() & series.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"row {labels[row]}, column {column!r}: not a number: {series.iloc[row]!r:.60}")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _seconds(values: Any, column: str, labels: np.ndarray) -> np.ndarray:
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        times = pd.to_datetime(series, utc=True, format="mixed")
    except (ValueError, TypeError) as error:
        raise ValueError(f"column {column!r}: timestamps must be numbers (seconds) or ISO 8601 times: {error}") from error
    seconds = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _log_directory(path: Path, policy: str | None) -> Path:
    """Resolve a server data directory or a policy's data directory to its segment directory."""
    if not path.is_dir() or list_segments(path):
        return path
    if list_segments(path / "events"):
        return path / "events"  # a policy's data directory keeps its log in events/
    policies = sorted(p.name for p in path.iterdir() if list_segments(p / "events"))
    if policy is not None and policy in policies:
        return path / policy / "events"
    if policies:
        raise ValueError(
            f"{path} is a server data directory with the policies {policies}: choose one with --policy"
            f" (got {policy!r}) or pass the policy's directory"
        )
    return path


def read_event_log(path: str | os.PathLike[str], policy: str | None = None) -> LoggedData:
    """Read the joined events of a microbandit event log.

    Parameters
    ----------
    path : str or os.PathLike
        A log directory (its complete segments are read), a policy's data
        directory (its ``events`` subdirectory is read), a server data
        directory holding one directory per policy (with ``policy``), or one
        Parquet file with the event schema.
    policy : str, optional
        Keep only this policy's rows, for a directory holding several.

    Returns
    -------
    LoggedData
        Rows with outcome ``observed`` or ``default``; ``not_activated`` rows
        (never learned by the server) are counted in ``skipped``.

    Raises
    ------
    ValueError
        If the log has no joined rows, or a row is invalid (named by row
        number and event id).
    """
    path = _log_directory(Path(path), policy)
    if path.is_dir():
        table = read_events(path, kinds=["joined"])
    elif path.is_file():
        table = pq.read_table(path, schema=EVENT_SCHEMA)
        table = table.filter(pc.equal(table["kind"], "joined"))
    else:
        raise FileNotFoundError(f"event log {path} does not exist")
    if policy is not None:
        table = table.filter(pc.equal(table["policy"], policy))
    columns = table.select(
        ["event_id", "timestamp", "context_json", "actions_json", "action_ids", "pmf", "chosen_action",
         "probability", "reward", "status"]
    ).to_pydict()
    n_total = len(columns["event_id"])
    if n_total == 0:
        raise ValueError(f"event log {path} has no joined events to evaluate on (policy filter: {policy!r})")

    keep = [i for i, status in enumerate(columns["status"]) if status != "not_activated"]
    skipped = {"not_activated": n_total - len(keep)}
    if not keep:
        raise ValueError(f"event log {path}: all {n_total} joined events are not_activated; nothing to evaluate")

    vocabulary = _ActionVocabulary()
    action_cache: dict[str, dict[str, int]] = {}
    contexts: list[dict[str, Any]] = []
    eligible: list[list[int]] = []
    chosen: list[int] = []
    pmfs: list[list[float]] = []
    labels = np.array([f"{i} (event {columns['event_id'][i]})" for i in keep], dtype=object)
    for out_row, i in enumerate(keep):
        label = labels[out_row]
        try:
            contexts.append(flatten_context(validate_namespaces(json.loads(columns["context_json"][i]))))
        except (TypeError, ValueError) as error:
            raise ValueError(f"row {label}, column 'context_json': {error}") from error
        actions_text = columns["actions_json"][i]
        by_id = action_cache.get(actions_text)
        if by_id is None:
            by_id = {a.id: vocabulary.add(a) for a in _parse_actions(actions_text, label, "actions_json")}
            action_cache[actions_text] = by_id
        ids = columns["action_ids"][i] or []
        missing = [a for a in ids if a not in by_id]
        if missing or not ids:
            raise ValueError(f"row {label}, column 'action_ids': eligible ids {missing or ids} are not in actions_json")
        eligible.append([by_id[a] for a in ids])
        if columns["chosen_action"][i] not in ids:
            raise ValueError(
                f"row {label}, column 'chosen_action': {columns['chosen_action'][i]!r} is not an eligible action"
            )
        chosen.append(ids.index(columns["chosen_action"][i]))
        pmfs.append(list(columns["pmf"][i] or []))

    frame = {
        "probability": _numeric([columns["probability"][i] for i in keep], "probability", labels),
        "reward": _numeric([columns["reward"][i] for i in keep], "reward", labels),
        "timestamp": np.array([columns["timestamp"][i].timestamp() for i in keep]),
        "event_id": np.array([columns["event_id"][i] for i in keep], dtype=object),
    }
    has_pmf = all(len(p) > 0 for p in pmfs)
    return _build(contexts, eligible, chosen, vocabulary, frame, skipped, f"event log {path}", labels,
                  pmfs if has_pmf else None)


def read_dsjson(path: str | os.PathLike[str], policy: str = "dsjson") -> LoggedData:
    """Read an Azure Personalizer DSJSON log (one JSON event per line).

    The lines are converted to joined events with
    :func:`bandit.maintenance.import_dsjson`, the same conversion as
    ``microbandit logs import``, in a temporary directory that is removed
    afterwards. Deferred events that were never activated are skipped and
    counted, as in the event log.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DSJSON log {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="microbandit-dsjson-") as directory:
        count = import_dsjson(path, directory, policy)
        if count == 0:
            raise ValueError(f"DSJSON log {path} is empty: there are no events to evaluate on")
        data = read_event_log(Path(directory) / "events")
    return replace(data, source=f"DSJSON log {path}")


def read_table(path: str | os.PathLike[str]) -> LoggedData:
    """Read a plain table of logged rounds (Parquet or CSV).

    Required columns: ``context`` (JSON object of namespaces),
    ``actions`` (JSON list of ids or action objects, in scoring order),
    ``chosen_action`` (an id in ``actions``), ``probability`` and
    ``reward``. Optional: ``position`` (integer), ``timestamp`` (seconds or
    ISO 8601), ``pmf`` (JSON list aligned with ``actions``), ``event_id``.

    Raises
    ------
    ValueError
        If a required column is missing, the table is empty, or a value is
        invalid. The message names the row (0-based, in file order) and the
        column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pq.read_table(path).to_pandas()
    elif suffix in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={"chosen_action": str})
    else:
        raise ValueError(f"table {path} must end in .parquet, .csv or .tsv, got {suffix!r}")
    return table_to_logged_data(frame, f"table {path}")


def table_to_logged_data(frame: pd.DataFrame, source: str = "table") -> LoggedData:
    """Validate a DataFrame with the plain-table columns (see :func:`read_table`)."""
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} is missing required columns {missing}; it has {list(frame.columns)}")
    n = len(frame)
    if n == 0:
        raise ValueError(f"{source} is empty: there are no rows to evaluate on")
    labels = np.arange(n)
    vocabulary = _ActionVocabulary()
    action_cache: dict[str, list[int]] = {}
    contexts: list[dict[str, Any]] = []
    eligible: list[list[int]] = []
    chosen: list[int] = []
    pmfs: list[list[float]] | None = [] if "pmf" in frame.columns else None
    for row, (context, actions_value, chosen_action) in enumerate(
        zip(frame["context"], frame["actions"], frame["chosen_action"])
    ):
        try:
            contexts.append(flatten_context(validate_namespaces(_decode_json(context, row, "context"))))
        except TypeError as error:
            raise ValueError(f"row {row}, column 'context': {error}") from error
        key = actions_value if isinstance(actions_value, str) else None
        indices = action_cache.get(key) if key is not None else None
        if indices is None:
            indices = [vocabulary.add(a) for a in _parse_actions(actions_value, row, "actions")]
            if len(set(indices)) != len(indices):
                raise ValueError(f"row {row}, column 'actions': an action id appears twice")
            if key is not None:
                action_cache[key] = indices
        eligible.append(indices)
        ids = [vocabulary.actions[i].id for i in indices]
        if not isinstance(chosen_action, str) or chosen_action not in ids:
            raise ValueError(f"row {row}, column 'chosen_action': {chosen_action!r} is not in the row's actions")
        chosen.append(ids.index(chosen_action))
        if pmfs is not None:
            values = _decode_json(frame["pmf"].iloc[row], row, "pmf")
            pmfs.append([float(v) for v in values])

    columns: dict[str, Any] = {
        "probability": _numeric(frame["probability"].to_numpy(), "probability", labels),
        "reward": _numeric(frame["reward"].to_numpy(), "reward", labels),
    }
    if "position" in frame.columns:
        position = _numeric(frame["position"].to_numpy(), "position", labels)
        if not np.isfinite(position).all() or (position != np.round(position)).any():
            row = int(np.flatnonzero(~np.isfinite(position) | (position != np.round(position)))[0])
            raise ValueError(f"row {row}, column 'position': must be a whole number, got {position[row]!r}")
        columns["position"] = position.astype(np.int64)
    if "timestamp" in frame.columns:
        columns["timestamp"] = _seconds(frame["timestamp"], "timestamp", labels)
    if "event_id" in frame.columns:
        columns["event_id"] = frame["event_id"].astype(str).to_numpy(dtype=object)
    return _build(contexts, eligible, chosen, vocabulary, columns, {}, source, labels, pmfs)


def read_log(spec: str, policy: str | None = None) -> LoggedData:
    """Read a log named on the command line.

    ``obd:POLICY/CAMPAIGN`` (for example ``obd:random/all``) reads the Open
    Bandit Dataset sample. A directory, or a Parquet file with the event
    schema, reads the event log. A ``.json``, ``.jsonl`` or ``.dsjson`` file
    reads an Azure Personalizer DSJSON log. Any other ``.parquet`` or
    ``.csv`` file reads a plain table.
    """
    if spec.startswith("obd:"):
        from offline_eval.obd import read_obd

        behavior, _, campaign = spec[4:].partition("/")
        return read_obd(behavior, campaign or "all")
    path = Path(spec)
    if path.suffix.lower() in DSJSON_SUFFIXES:
        return read_dsjson(path, policy or "dsjson")
    if path.is_dir():
        return read_event_log(path, policy)
    if path.suffix.lower() == ".parquet" and path.is_file():
        names = set(pq.read_schema(path).names)
        if {"kind", "context_json", "action_ids"} <= names:
            return read_event_log(path, policy)
    return read_table(path)
