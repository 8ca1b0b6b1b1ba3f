"""Privacy and log maintenance: pseudonyms, erasure with rebuild, retention, DSJSON."""

import json

import pytest

from bandit import Action, DecisionLoop, JoinSettings, PolicySettings, SquareCB, read_records
from bandit.events import DecisionRecord, JoinedEvent, RewardRecord
from bandit.maintenance import apply_retention, erase_user, export_dsjson, import_dsjson, summarize
from bandit.privacy import Pseudonymizer, load_pseudonym_key

KEY = b"0123456789abcdef-test-key"
ACTIONS = [Action("A", {"look": {"style": "bold"}}), Action("B", {"look": {"style": "calm"}})]


def test_pseudonym_is_keyed_and_stable():
    first = Pseudonymizer(KEY)
    assert first.pseudonymize("alice") == first.pseudonymize("alice")
    assert first.pseudonymize("alice") != first.pseudonymize("bob")
    assert first.pseudonymize("alice") != Pseudonymizer(b"another-key-of-16+").pseudonymize("alice")
    assert "alice" not in first.pseudonymize("alice")
    assert KEY.decode() not in repr(first)


def test_key_loading(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROBANDIT_USER_ID_KEY", raising=False)
    with pytest.raises(ValueError, match="no pseudonymization key"):
        load_pseudonym_key()
    monkeypatch.setenv("MICROBANDIT_USER_ID_KEY", "tiny-k3y")
    with pytest.raises(ValueError, match="shorter than 16 bytes") as info:
        load_pseudonym_key()
    assert "tiny-k3y" not in str(info.value)
    path = tmp_path / "key"
    path.write_bytes(KEY + b"\n")
    assert load_pseudonym_key(path) == KEY


def _fill(tmp_path, users, rounds=60, clock=None):
    clock = clock or [1_700_000_000.0]
    settings = PolicySettings("p", exploration=SquareCB(), join=JoinSettings(reward_wait_time=2.0))
    loop = DecisionLoop(settings, tmp_path, clock=lambda: clock[0])
    pseudonymizer = Pseudonymizer(KEY)
    for i in range(rounds):
        clock[0] += 1.0
        user = users[i % len(users)]
        decision = loop.choose({"user": {"device": "mobile"}}, ACTIONS, user_id=pseudonymizer.pseudonymize(user))
        loop.reward(decision.event_id, 1.0 if (decision.chosen_action == "A") == (user == "alice") else 0.0)
        loop.advance()
    clock[0] += 10
    loop.advance()
    loop.close()
    return settings


def test_erasure_removes_user_and_model_is_rebuilt_without_them(tmp_path):
    settings = _fill(tmp_path / "both", ["alice", "bob"])
    pseudonym = Pseudonymizer(KEY).pseudonymize("alice")
    before = read_records(tmp_path / "both" / "events")
    alice_events = {r.event_id for r in before if isinstance(r, DecisionRecord) and r.user_id == pseudonym}
    assert len(alice_events) == 30

    removed = erase_user(tmp_path / "both", pseudonym)
    after = read_records(tmp_path / "both" / "events")
    assert removed == len(before) - len(after)
    assert not any(getattr(r, "event_id", None) in alice_events for r in after if not isinstance(r, JoinedEvent))
    assert not any(r.decision.event_id in alice_events for r in after if isinstance(r, JoinedEvent))
    assert not (tmp_path / "both" / "checkpoint.mbk").exists()

    # The rebuilt model equals a model learned only from bob's joined events.
    rebuilt = DecisionLoop(settings, tmp_path / "both")
    reference = DecisionLoop(settings)
    for record in after:
        if isinstance(record, JoinedEvent):
            reference.policy.learn(record)
    assert rebuilt.policy.examples_learned == 30
    context = {"user": {"device": "mobile"}}
    assert rebuilt.policy.pmf(context, ACTIONS) == pytest.approx(reference.policy.pmf(context, ACTIONS), abs=1e-9)


def test_retention_deletes_only_old_segments(tmp_path):
    clock = [1_700_000_000.0]
    _fill(tmp_path, ["u"], rounds=10, clock=clock)
    old_rows = summarize(tmp_path).rows_by_kind
    clock[0] += 30 * 86_400
    _fill(tmp_path, ["u"], rounds=10, clock=clock)
    removed = apply_retention(tmp_path, max_age_seconds=7 * 86_400, now=clock[0])
    assert removed == sum(old_rows.values())
    remaining = read_records(tmp_path / "events")
    assert min(r.timestamp for r in remaining if isinstance(r, DecisionRecord)) > clock[0] - 7 * 86_400


def test_dsjson_round_trip(tmp_path):
    _fill(tmp_path / "src", ["u"], rounds=20)
    exported = tmp_path / "events.json"
    assert export_dsjson(tmp_path / "src", exported) == 20
    first = json.loads(exported.read_text().splitlines()[0])
    assert {"_label_cost", "_label_probability", "a", "c", "p", "EventId"} <= set(first)
    assert import_dsjson(exported, tmp_path / "dst", "p") == 20
    original = [r for r in read_records(tmp_path / "src" / "events") if isinstance(r, JoinedEvent)]
    imported = [r for r in read_records(tmp_path / "dst" / "events") if isinstance(r, JoinedEvent)]
    for a, b in zip(original, imported):
        assert a.decision.event_id == b.decision.event_id
        assert a.decision.chosen_action == b.decision.chosen_action
        assert a.decision.probability == b.decision.probability
        assert a.decision.pmf_dict() == pytest.approx(b.decision.pmf_dict())
        assert a.reward == b.reward
        assert a.decision.context == b.decision.context


def test_dsjson_bad_line_names_line_and_writes_nothing(tmp_path):
    source = tmp_path / "bad.json"
    source.write_text('{"c": {"_multi": []}, "a": [1], "p": [1.0]}\n')
    with pytest.raises(ValueError, match="DSJSON line 1"):
        import_dsjson(source, tmp_path / "dst", "p")
    assert not list((tmp_path / "dst" / "events").glob("*.parquet"))
