"""Typed records of the decision loop and their single Arrow schema.

Four kinds of record share one flat schema (:data:`EVENT_SCHEMA`), so one
Parquet dataset holds a policy's whole history and any Parquet reader can
query it:

``decision``
    What was chosen, from which PMF, with which model version.
``reward``
    A reward as it arrived, with how the join classified it.
``activation``
    An ``Activate`` call for a deferred decision.
``joined``
    A decision with its aggregated reward (or the default reward), emitted
    once when its reward window closes. Only ``joined`` rows with outcome
    ``observed`` or ``default`` are learned from.

Columns a kind does not use are null. Times are UTC with microsecond
resolution; in Python they are float seconds since the Unix epoch.
Contexts and action features are stored as canonical JSON text
(``context_json``, ``actions_json``), because a feature value may be a
string, a number or a boolean and Parquet has no union type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pyarrow as pa

from bandit.features import Action, Namespaces, validate_namespaces

__all__ = [
    "LearningMode",
    "JoinOutcome",
    "RewardStatus",
    "DecisionRecord",
    "RewardRecord",
    "ActivationRecord",
    "JoinedEvent",
    "EVENT_SCHEMA",
    "records_to_table",
    "table_to_records",
    "context_to_json",
    "context_from_json",
    "actions_to_json",
    "actions_from_json",
]


class LearningMode(str, Enum):
    """How a policy decides and whether it learns."""

    ONLINE = "online"
    """Explore with the model's PMF and learn from rewards."""
    APPRENTICE = "apprentice"
    """Return the baseline action, learn from it, and report the match rate."""
    LOGGING_ONLY = "logging_only"
    """Return the baseline action and log; learn nothing."""


class JoinOutcome(str, Enum):
    """Reason a joined event carries its reward."""

    OBSERVED = "observed"
    """At least one reward arrived inside the window; it was aggregated."""
    DEFAULT = "default"
    """No reward arrived inside the window; the default reward applies."""
    NOT_ACTIVATED = "not_activated"
    """A deferred decision was never activated; it is not learned."""


class RewardStatus(str, Enum):
    """Classification of a reward when it arrived."""

    ACCEPTED = "accepted"
    """Counted for its event, whose window is open."""
    LATE = "late"
    """Arrived after the event's window closed; stored, never learned."""
    DUPLICATE = "duplicate"
    """Its reward id was already counted for this event; ignored."""
    PENDING_DECISION = "pending_decision"
    """The decision is not known yet; held in case it arrives shortly."""
    ORPHAN = "orphan"
    """No decision arrived within the hold window; stored and reported."""


def context_to_json(context: Namespaces) -> str:
    """Serialize namespaces as canonical JSON (sorted keys, no spaces)."""
    return json.dumps({ns: dict(f) for ns, f in context.items()}, sort_keys=True, separators=(",", ":"))


def context_from_json(text: str) -> Namespaces:
    """Parse :func:`context_to_json` output back into validated namespaces."""
    return validate_namespaces(json.loads(text))


def actions_to_json(actions: Sequence[Action]) -> str:
    """Serialize actions (id and features) as canonical JSON."""
    # Action.key is each action's canonical JSON, computed once at construction.
    return "[" + ",".join(a.key for a in actions) + "]"


def actions_from_json(text: str) -> tuple[Action, ...]:
    """Parse :func:`actions_to_json` output back into actions."""
    return tuple(Action(item["id"], item["features"]) for item in json.loads(text))


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision, as logged.

    ``action_ids`` and ``pmf`` are aligned and list the eligible actions in
    scoring order; ``probability`` is exactly the probability ``chosen_action``
    was sampled with.
    """

    event_id: str
    policy: str
    timestamp: float
    context: Namespaces
    actions: tuple[Action, ...]
    excluded_ids: tuple[str, ...]
    action_ids: tuple[str, ...]
    pmf: tuple[float, ...]
    chosen_action: str
    probability: float
    model_version: int
    learning_mode: LearningMode
    deferred: bool = False
    baseline_action: str | None = None
    user_id: str | None = None

    @property
    def eligible_actions(self) -> tuple[Action, ...]:
        """Actions that were scored, in scoring order."""
        by_id = {a.id: a for a in self.actions}
        return tuple(by_id[i] for i in self.action_ids)

    def pmf_dict(self) -> dict[str, float]:
        """Return the PMF keyed by action id."""
        return dict(zip(self.action_ids, self.pmf))


@dataclass(frozen=True, slots=True)
class RewardRecord:
    """One reward as it arrived."""

    event_id: str
    policy: str
    timestamp: float
    value: float
    reward_id: str | None = None
    status: RewardStatus = RewardStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class ActivationRecord:
    """One activation of a deferred decision."""

    event_id: str
    policy: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class JoinedEvent:
    """A decision with its final reward, emitted once when its window closes.

    Parameters
    ----------
    decision : DecisionRecord
        The decision being joined.
    reward : float or None
        Aggregated reward, the default reward, or ``None`` when the outcome is
        ``not_activated``.
    outcome : JoinOutcome
        Why the event carries this reward.
    reward_count : int
        Number of distinct rewards aggregated.
    joined_at : float
        Time the join was emitted, seconds since the epoch.
    """

    decision: DecisionRecord
    reward: float | None
    outcome: JoinOutcome
    reward_count: int
    joined_at: float

    @property
    def learnable(self) -> bool:
        """Whether a learner should learn from this event."""
        return self.outcome is not JoinOutcome.NOT_ACTIVATED


Record = DecisionRecord | RewardRecord | ActivationRecord | JoinedEvent

_TS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
        pa.field("timestamp", _TS, nullable=False),  # decision time for decision and joined rows
        pa.field("context_json", pa.string()),
        pa.field("actions_json", pa.string()),
        pa.field("excluded_ids", pa.list_(pa.string())),
        pa.field("action_ids", pa.list_(pa.string())),
        pa.field("pmf", pa.list_(pa.float64())),
        pa.field("chosen_action", pa.string()),
        pa.field("probability", pa.float64()),
        pa.field("model_version", pa.int64()),
        pa.field("learning_mode", pa.string()),
        pa.field("deferred", pa.bool_()),
        pa.field("baseline_action", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("reward", pa.float64()),
        pa.field("reward_id", pa.string()),
        pa.field("reward_count", pa.int32()),
        pa.field("status", pa.string()),  # RewardStatus for reward rows, JoinOutcome for joined rows
        pa.field("joined_at", _TS),
    ]
)
"""The one schema of every event-log segment."""


def _decision_columns(decision: DecisionRecord) -> dict[str, Any]:
    return {
        "event_id": decision.event_id,
        "policy": decision.policy,
        "timestamp": decision.timestamp,
        "context_json": context_to_json(decision.context),
        "actions_json": actions_to_json(decision.actions),
        "excluded_ids": list(decision.excluded_ids),
        "action_ids": list(decision.action_ids),
        "pmf": list(decision.pmf),
        "chosen_action": decision.chosen_action,
        "probability": decision.probability,
        "model_version": decision.model_version,
        "learning_mode": decision.learning_mode.value,
        "deferred": decision.deferred,
        "baseline_action": decision.baseline_action,
        "user_id": decision.user_id,
    }


def _record_row(record: Record) -> dict[str, Any]:
    if isinstance(record, DecisionRecord):
        return {"kind": "decision", **_decision_columns(record)}
    if isinstance(record, RewardRecord):
        return {
            "kind": "reward",
            "event_id": record.event_id,
            "policy": record.policy,
            "timestamp": record.timestamp,
            "reward": record.value,
            "reward_id": record.reward_id,
            "status": record.status.value,
        }
    if isinstance(record, ActivationRecord):
        return {"kind": "activation", "event_id": record.event_id, "policy": record.policy, "timestamp": record.timestamp}
    if isinstance(record, JoinedEvent):
        return {
            "kind": "joined",
            **_decision_columns(record.decision),
            "reward": record.reward,
            "reward_count": record.reward_count,
            "status": record.outcome.value,
            "joined_at": record.joined_at,
        }
    raise TypeError(f"cannot log a {type(record).__name__}")


def records_to_table(records: Iterable[Record]) -> pa.Table:
    """Convert records to a table of :data:`EVENT_SCHEMA`."""
    rows = [_record_row(r) for r in records]
    columns: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    for row in rows:
        for name in EVENT_SCHEMA.names:
            value = row.get(name)
            if name in ("timestamp", "joined_at") and value is not None:
                value = int(round(value * 1_000_000))
            columns[name].append(value)
    arrays = []
    for schema_field in EVENT_SCHEMA:
        values = columns[schema_field.name]
        if schema_field.type == _TS:
            arrays.append(pa.array(values, type=pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(values, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def _seconds(value: Any) -> float:
    # pyarrow returns timezone-aware datetimes; keep microsecond precision.
    return value.timestamp() if value is not None else float("nan")


def _decision_from_row(row: Mapping[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        event_id=row["event_id"],
        policy=row["policy"],
        timestamp=_seconds(row["timestamp"]),
        context=context_from_json(row["context_json"]),
        actions=actions_from_json(row["actions_json"]),
        excluded_ids=tuple(row["excluded_ids"] or ()),
        action_ids=tuple(row["action_ids"]),
        pmf=tuple(row["pmf"]),
        chosen_action=row["chosen_action"],
        probability=row["probability"],
        model_version=row["model_version"],
        learning_mode=LearningMode(row["learning_mode"]),
        deferred=bool(row["deferred"]),
        baseline_action=row["baseline_action"],
        user_id=row["user_id"],
    )


def table_to_records(table: pa.Table) -> list[Record]:
    """Convert a table of :data:`EVENT_SCHEMA` back to records, in row order."""
    records: list[Record] = []
    for row in table.to_pylist():
        kind = row["kind"]
        if kind == "decision":
            records.append(_decision_from_row(row))
        elif kind == "reward":
            records.append(
                RewardRecord(
                    event_id=row["event_id"],
                    policy=row["policy"],
                    timestamp=_seconds(row["timestamp"]),
                    value=row["reward"],
                    reward_id=row["reward_id"],
                    status=RewardStatus(row["status"]),
                )
            )
        elif kind == "activation":
            records.append(ActivationRecord(row["event_id"], row["policy"], _seconds(row["timestamp"])))
        elif kind == "joined":
            records.append(
                JoinedEvent(
                    decision=_decision_from_row(row),
                    reward=row["reward"],
                    outcome=JoinOutcome(row["status"]),
                    reward_count=row["reward_count"],
                    joined_at=_seconds(row["joined_at"]),
                )
            )
        else:
            raise ValueError(f"event log row has unknown kind {kind!r}")
    return records
