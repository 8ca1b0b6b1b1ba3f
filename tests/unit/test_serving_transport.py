"""Decision records survive the decider-to-learner packing unchanged."""

from __future__ import annotations

import pickle

from bandit.events import DecisionRecord, LearningMode
from bandit.features import Action
from serving._private.transport import ActionDecoder, pack_decisions


def _record(event_id: str, actions: tuple[Action, ...]) -> DecisionRecord:
    return DecisionRecord(
        event_id=event_id,
        policy="p",
        timestamp=1_800_000_000.25,
        context={"device": {"type": "mobile", "wifi": True, "hour": 21.0}},
        actions=actions,
        excluded_ids=("c",),
        action_ids=("a", "b"),
        pmf=(0.75, 0.25),
        chosen_action="b",
        probability=0.25,
        model_version=3,
        learning_mode=LearningMode.APPRENTICE,
        deferred=True,
        baseline_action="a",
        user_id="0123abcd",
    )


def test_round_trip_through_pickle_keeps_records() -> None:
    actions = (Action("a", {}), Action("b", {"img": {"large": True, "w": 0.5}}), Action("c", {"x": {"s": "a|b:c"}}))
    records = [_record("e1", actions), _record("e2", actions)]
    rows = pickle.loads(pickle.dumps(pack_decisions(records)))
    decoded = ActionDecoder().unpack(rows)
    assert decoded == records
    assert decoded[0].actions[1].features["img"]["w"] == 0.5
    assert decoded[0].actions[1] is decoded[1].actions[1]


def test_decoder_cache_is_bounded() -> None:
    decoder = ActionDecoder(size=2)
    for i in range(5):
        decoder.unpack(pack_decisions([_record(f"e{i}", (Action(f"a{i}", {}), Action("b", {})))]))
    assert len(decoder._actions) == 2
