"""Compact form of decision records for the decider-to-learner hop.

Ray pickles the arguments of actor calls. A :class:`~bandit.events.DecisionRecord`
contains read-only mappings, which do not pickle, and converting records to an
event-log table costs about 100 us per record (JSON of every action), more
than the decision itself. So a record travels as a tuple of plain values,
and each action as its canonical JSON key (:attr:`bandit.features.Action.key`):
the deciders reuse one :class:`~bandit.features.Action` object per distinct
action, so pickle writes each key string once per batch, and the learner
parses each distinct key once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from bandit.events import DecisionRecord, LearningMode
from bandit.features import Action, validate_namespaces

__all__ = ["PackedDecision", "pack_decisions", "ActionDecoder"]

PackedDecision = tuple[Any, ...]
"""One decision record as a tuple of plain, picklable values."""


def pack_decisions(records: Iterable[DecisionRecord]) -> list[PackedDecision]:
    """Return the records as tuples of plain values."""
    return [
        (
            r.event_id,
            r.policy,
            r.timestamp,
            {name: dict(features) for name, features in r.context.items()},
            tuple(a.key for a in r.actions),
            r.excluded_ids,
            r.action_ids,
            r.pmf,
            r.chosen_action,
            r.probability,
            r.model_version,
            r.learning_mode.value,
            r.deferred,
            r.baseline_action,
            r.user_id,
        )
        for r in records
    ]


class ActionDecoder:
    """Rebuilds decision records, parsing each distinct action key once.

    Parameters
    ----------
    size : int
        Maximum number of actions kept; the least recently used is evicted first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._actions: OrderedDict[str, Action] = OrderedDict()

    def _action(self, key: str) -> Action:
        action = self._actions.get(key)
        if action is not None:
            self._actions.move_to_end(key)
            return action
        data = json.loads(key)
        action = Action(data["id"], data["features"])
        self._actions[key] = action
        if len(self._actions) > self.size:
            self._actions.popitem(last=False)
        return action

    def unpack(self, rows: Iterable[PackedDecision]) -> list[DecisionRecord]:
        """Return the decision records of :func:`pack_decisions` output."""
        records = []
        for row in rows:
            (event_id, policy, timestamp, context, action_keys, excluded, action_ids, pmf, chosen, probability,
             version, mode, deferred, baseline, user_id) = row  # fmt: skip
            records.append(
                DecisionRecord(
                    event_id=event_id,
                    policy=policy,
                    timestamp=timestamp,
                    context=validate_namespaces(context),
                    actions=tuple(self._action(key) for key in action_keys),
                    excluded_ids=tuple(excluded),
                    action_ids=tuple(action_ids),
                    pmf=tuple(pmf),
                    chosen_action=chosen,
                    probability=probability,
                    model_version=version,
                    learning_mode=LearningMode(mode),
                    deferred=deferred,
                    baseline_action=baseline,
                    user_id=user_id,
                )
            )
        return records
