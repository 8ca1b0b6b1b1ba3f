"""Event-log maintenance: summary, retention, erasure, DSJSON export and import.

A policy directory contains ``events/`` (the Parquet segments) and
``checkpoint.mbk``. Retention and erasure rewrite or delete whole segments;
each rewritten segment replaces the old file under the same name with an
atomic rename, so readers see either the old or the new segment, never a
mix. Retention only deletes complete segments, which the learner never
writes again, so it may run while the server runs (the server runs it
itself on a schedule). Erasure must run while the server is stopped,
because a running learner would keep writing checkpoints that still
contain the erased records; ``microbandit logs erase`` checks the data
directory's lock and stops when a server holds it.

Erasure also deletes the policy's checkpoint: the model learned from the
erased records, so the next start rebuilds it by replaying the joined
events that remain in the log.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit.eventlog import EventLog, list_segments, read_events, read_records
from bandit.events import (
    EVENT_SCHEMA,
    DecisionRecord,
    JoinedEvent,
    JoinOutcome,
    LearningMode,
)
from bandit.features import Action, validate_namespaces
from bandit.errors import DataDirectoryInUseError
from bandit.learner import CHECKPOINT_NAME

__all__ = [
    "LOCK_FILE_NAME",
    "acquire_data_dir_lock",
    "check_not_in_use",
    "LogSummary",
    "policy_directories",
    "summarize",
    "apply_retention",
    "erase_user",
    "export_dsjson",
    "import_dsjson",
]

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "server.lock"
"""File in a server data directory that a running server keeps locked."""


def policy_directories(root: str | os.PathLike[str]) -> list[Path]:
    """Return ``root`` if it is a policy directory, else its policy subdirectories.

    A server data directory keeps its policies under ``policies/``; those
    are found too.
    """
    path = Path(root)
    if (path / "events").is_dir():
        return [path]
    if not path.is_dir():
        raise ValueError(f"log directory {path} does not exist")
    found = [p for p in path.iterdir() if (p / "events").is_dir()]
    if (path / "policies").is_dir():
        found += [p for p in (path / "policies").iterdir() if (p / "events").is_dir()]
    return sorted(found)


def acquire_data_dir_lock(data_dir: str | os.PathLike[str]) -> int:
    """Take the exclusive lock of a server data directory; return the open descriptor holding it.

    A running server holds the lock (``server.lock``, an advisory
    ``flock``) for its lifetime; the operating system releases it when the
    process ends, even after a crash. Close the descriptor to release it.

    Raises
    ------
    DataDirectoryInUseError
        If another process holds the lock.
    """
    path = Path(data_dir) / LOCK_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise DataDirectoryInUseError(
            f"data directory {Path(data_dir)} is in use by a running server (it holds {path}); stop the server first"
        ) from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
    return descriptor


def check_not_in_use(directory: str | os.PathLike[str]) -> None:
    """Raise if a running server holds the data directory containing ``directory``.

    ``directory`` may be a data directory, its ``policies/`` folder or one
    policy directory, so the lock is looked for up to two levels up.

    Raises
    ------
    DataDirectoryInUseError
        If a server holds the lock.
    """
    path = Path(directory).resolve()
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / LOCK_FILE_NAME).exists():
            os.close(acquire_data_dir_lock(candidate))
            return


@dataclass(frozen=True)
class LogSummary:
    """Counts of one policy's event log."""

    policy_dir: Path
    segments: int
    rows_by_kind: dict[str, int]
    rows_by_status: dict[str, int]
    first_timestamp: datetime | None
    last_timestamp: datetime | None


def summarize(policy_dir: str | os.PathLike[str]) -> LogSummary:
    """Count the rows of a policy's log by kind and status."""
    events_dir = Path(policy_dir) / "events"
    table = read_events(events_dir)
    kinds = Counter(table["kind"].to_pylist())
    statuses = Counter(f"{k}:{s}" for k, s in zip(table["kind"].to_pylist(), table["status"].to_pylist()) if s)
    timestamps = table["timestamp"]
    return LogSummary(
        policy_dir=Path(policy_dir),
        segments=len(list_segments(events_dir)),
        rows_by_kind=dict(kinds),
        rows_by_status=dict(statuses),
        first_timestamp=pc.min(timestamps).as_py() if len(table) else None,
        last_timestamp=pc.max(timestamps).as_py() if len(table) else None,
    )


def _replace_segment(segment: Path, table: pa.Table) -> None:
    temporary = segment.with_name(f".{segment.name}.tmp")
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, segment)


def apply_retention(policy_dir: str | os.PathLike[str], max_age_seconds: float, now: float) -> int:
    """Delete the segments whose newest record is older than ``now - max_age_seconds``.

    Returns
    -------
    int
        Number of rows deleted.
    """
    if max_age_seconds <= 0:
        raise ValueError(f"max_age_seconds must be > 0, got {max_age_seconds!r}")
    cutoff = now - max_age_seconds
    removed = 0
    for segment in list_segments(Path(policy_dir) / "events"):
        table = pq.read_table(segment, columns=["timestamp", "joined_at"])
        newest = max(
            (v.timestamp() for column in ("timestamp", "joined_at") for v in [pc.max(table[column]).as_py()] if v),
            default=None,
        )
        if newest is not None and newest < cutoff:
            removed += table.num_rows
            segment.unlink()
            logger.info("retention deleted segment %s (%d rows, newest %.0f s old)", segment.name,
                        table.num_rows, now - newest)
    return removed


def erase_user(policy_dir: str | os.PathLike[str], pseudonym: str) -> int:
    """Remove every record of one pseudonymous user from a policy's log.

    Rows of the user's decisions and joined events, and the rewards and
    activations of those events, are removed. The checkpoint is deleted so
    the next start rebuilds the model from the remaining log.

    Returns
    -------
    int
        Number of rows removed.
    """
    if not pseudonym:
        raise ValueError("pseudonym must not be empty")
    events_dir = Path(policy_dir) / "events"
    segments = list_segments(events_dir)
    user_events: set[str] = set()
    for segment in segments:
        table = pq.read_table(segment, columns=["event_id", "user_id"])
        mask = pc.equal(table["user_id"], pseudonym)
        user_events.update(table.filter(pc.fill_null(mask, False))["event_id"].to_pylist())
    if not user_events:
        return 0
    wanted = pa.array(sorted(user_events), type=pa.string())
    removed = 0
    for segment in segments:
        table = pq.read_table(segment, schema=EVENT_SCHEMA)
        drop = pc.is_in(table["event_id"], value_set=wanted)
        count = pc.sum(drop).as_py() or 0
        if not count:
            continue
        kept = table.filter(pc.invert(drop))
        if kept.num_rows:
            _replace_segment(segment, kept)
        else:
            segment.unlink()
        removed += count
    checkpoint = Path(policy_dir) / CHECKPOINT_NAME
    if checkpoint.exists():
        checkpoint.unlink()
        logger.info("erasure deleted checkpoint %s; the model is rebuilt from the log at the next start", checkpoint)
    logger.info("erased %d rows of %d events of one pseudonymous user in %s", removed, len(user_events), policy_dir)
    return removed


# -- DSJSON -----------------------------------------------------------------------


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _dsjson_line(event: JoinedEvent) -> dict[str, Any]:
    decision = event.decision
    eligible = decision.eligible_actions
    order = sorted(range(len(eligible)), key=lambda i: (i != decision.action_ids.index(decision.chosen_action), i))
    chosen = decision.action_ids.index(decision.chosen_action)
    context: dict[str, Any] = {ns: dict(features) for ns, features in decision.context.items()}
    context["_multi"] = [{"_tag": a.id, **{ns: dict(f) for ns, f in a.features.items()}} for a in eligible]
    reward = event.reward if event.reward is not None else 0.0
    line: dict[str, Any] = {
        "_label_cost": -reward,
        "_label_probability": decision.probability,
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "Timestamp": _iso(decision.timestamp),
        "Version": "1",
        "EventId": decision.event_id,
        "a": [i + 1 for i in order],
        "c": context,
        "p": [decision.pmf[i] for i in order],
        "VWState": {"m": f"microbandit/{decision.model_version}"},
    }
    if event.outcome is JoinOutcome.OBSERVED:
        line["o"] = [{"EventId": decision.event_id, "v": event.reward}]
    if decision.deferred:
        line["DeferredAction"] = True
        if event.outcome is not JoinOutcome.NOT_ACTIVATED:
            line.setdefault("o", []).append({"EventId": decision.event_id, "ActionTaken": True})
    return line


def export_dsjson(policy_dir: str | os.PathLike[str], output: str | os.PathLike[str]) -> int:
    """Write the joined events of a policy as Personalizer-style DSJSON lines; return the count."""
    count = 0
    with open(output, "w", encoding="utf-8") as handle:
        for record in read_records(Path(policy_dir) / "events", kinds=["joined"]):
            assert isinstance(record, JoinedEvent)
            handle.write(json.dumps(_dsjson_line(record), separators=(",", ":")) + "\n")
            count += 1
    return count


def _parse_timestamp(text: str) -> float:
    cleaned = text.rstrip("Z")
    if "." in cleaned:
        head, fraction = cleaned.split(".", 1)
        cleaned = f"{head}.{fraction[:6]}"
    return datetime.fromisoformat(cleaned).replace(tzinfo=timezone.utc).timestamp()


def _dsjson_events(lines: Iterable[str], policy: str) -> Iterator[JoinedEvent]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
            context_in = dict(row["c"])
            multi = context_in.pop("_multi")
            actions = []
            for index, item in enumerate(multi):
                item = dict(item)
                action_id = str(item.pop("_tag", item.pop("id", index + 1)))
                features = {ns: f for ns, f in item.items() if isinstance(f, dict)}
                actions.append(Action(action_id, features))
            context = validate_namespaces({ns: f for ns, f in context_in.items() if isinstance(f, dict)})
            ranking = [int(a) - 1 for a in row["a"]]
            probabilities = [float(p) for p in row["p"]]
            pmf = [0.0] * len(actions)
            for index, probability in zip(ranking, probabilities):
                pmf[index] = probability
            chosen = int(row.get("_labelIndex", ranking[0]))
            reward = -float(row.get("_label_cost", 0.0))
            observed = any("v" in o for o in row.get("o", []))
            deferred = bool(row.get("DeferredAction", False))
            activated = (not deferred) or any(o.get("ActionTaken") for o in row.get("o", []))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ValueError(f"DSJSON line {number} is invalid: {error}") from error
        decision = DecisionRecord(
            event_id=str(row.get("EventId", f"dsjson-{number}")),
            policy=policy,
            timestamp=_parse_timestamp(row["Timestamp"]) if "Timestamp" in row else 0.0,
            context=context,
            actions=tuple(actions),
            excluded_ids=(),
            action_ids=tuple(a.id for a in actions),
            pmf=tuple(pmf),
            chosen_action=actions[chosen].id,
            probability=float(row.get("_label_probability", pmf[chosen])),
            model_version=0,
            learning_mode=LearningMode.ONLINE,
            deferred=deferred,
        )
        if not activated:
            yield JoinedEvent(decision, None, JoinOutcome.NOT_ACTIVATED, 0, decision.timestamp)
        else:
            outcome = JoinOutcome.OBSERVED if observed else JoinOutcome.DEFAULT
            yield JoinedEvent(decision, reward, outcome, int(observed), decision.timestamp)


def import_dsjson(source: str | os.PathLike[str], policy_dir: str | os.PathLike[str], policy: str) -> int:
    """Append the events of a DSJSON file to a policy's log as joined events; return the count.

    Each line becomes one decision record and one joined event, in file
    order, written as one new segment. A line that cannot be parsed raises
    ``ValueError`` naming its line number, and nothing is written.
    """
    with open(source, encoding="utf-8") as handle:
        events = list(_dsjson_events(handle, policy))
    log = EventLog(Path(policy_dir) / "events")
    for event in events:
        log.append(event.decision)
        log.append(event)
    log.flush()
    return len(events)

