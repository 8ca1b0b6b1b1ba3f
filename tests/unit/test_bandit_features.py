"""Encoding of contexts and actions to VW text: escaping, injectivity, validation."""

import math

import pytest
import vowpalwabbit

from bandit.features import (
    Action,
    Encoder,
    NamespaceLayout,
    escape_token,
    unescape_token,
    validate_actions,
    validate_namespaces,
)

HOSTILE = ["a|b", "x:1", "has space", "tab\there", "new\nline", "-lead", "ünïcødé ✓", "", "=", "!", "%41", "shared"]


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_round_trip_and_safe_alphabet(text):
    escaped = escape_token(text)
    assert unescape_token(escaped) == text
    assert all(ch.isascii() and (ch.isalnum() or ch in "_.%") for ch in escaped)


def test_hostile_features_do_not_inject_vw_syntax():
    encoder = Encoder(NamespaceLayout())
    context = validate_namespaces({"user": {name: name for name in HOSTILE}})
    line = encoder.shared_line(context)
    assert line.count("|") == 1
    assert "\n" not in line and "\t" not in line
    tokens = line.split(" ")[2:]
    assert len(tokens) == len(HOSTILE)
    for token, name in zip(tokens, HOSTILE):
        escaped_name, _, escaped_value = token.partition("=")
        assert unescape_token(escaped_name) == name
        assert unescape_token(escaped_value) == name


def test_hostile_action_id_stays_one_line():
    encoder = Encoder(NamespaceLayout())
    line = encoder.action_line(Action("a|b c\n:1", {"f": {"x": "y"}}))
    assert "\n" not in line
    assert line.count("|") == 2


def test_vw_parses_hostile_example_into_expected_feature_count():
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --quiet")
    encoder = Encoder(NamespaceLayout())
    context = validate_namespaces({"user": {name: name for name in HOSTILE}})
    lines = encoder.example_lines(context, [Action("a|b", {}), Action("x:1", {})])
    examples = workspace.parse(lines)
    assert len(examples) == 3
    assert examples[0].num_features_in("c") == len(HOSTILE)
    workspace.finish_example(examples)
    workspace.finish()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"ns": {"a": "b=c"}}, {"ns": {"a=b": "c"}}),
        ({"ns": {"a": True}}, {"ns": {"a": "True"}}),
        ({"ns": {"a": True}}, {"ns": {"a": 1.0}}),
        ({"ns": {"a": "1.0"}}, {"ns": {"a": 1.0}}),
        ({"ns": {"a b": "c"}}, {"ns": {"a": "b c"}}),
        ({"ns": {"a": ""}}, {"ns": {"": "a"}}),
        ({"ns1": {"a": "b"}}, {"ns2": {"a": "b"}}),
    ],
)
def test_different_inputs_encode_differently(first, second):
    encoder = Encoder(NamespaceLayout())
    assert encoder.shared_line(validate_namespaces(first)) != encoder.shared_line(validate_namespaces(second))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_feature_rejected_with_name(bad):
    with pytest.raises(ValueError, match=r"context\.user\['age'\] must be a finite number"):
        validate_namespaces({"user": {"age": bad}})


def test_non_finite_action_feature_rejected():
    with pytest.raises(ValueError, match="finite"):
        Action("a", {"item": {"price": math.nan}})


@pytest.mark.parametrize("name", ["a|b", "", "has space", "x" * 65, "ns:1"])
def test_invalid_namespace_name_rejected(name):
    with pytest.raises(ValueError, match="namespace name"):
        validate_namespaces({name: {"a": 1}})


def test_wrong_feature_type_rejected():
    with pytest.raises(TypeError, match="str, number or bool"):
        validate_namespaces({"user": {"a": [1, 2]}})


def test_actions_validation():
    with pytest.raises(ValueError, match="at least one action"):
        validate_actions([])
    with pytest.raises(ValueError, match="more than once"):
        validate_actions([Action("a", {}), Action("a", {})])
    with pytest.raises(ValueError, match="limit of 2"):
        validate_actions([Action(str(i), {}) for i in range(3)], max_actions=2)
    with pytest.raises(ValueError, match="action id"):
        Action("", {})


def test_layout_gives_named_namespaces_their_own_letters():
    layout = NamespaceLayout((("context.device", "action.layout"), ("context.*", "action.*")))
    device = layout.letter("context", "device")
    assert device not in ("c", "a")
    assert layout.letter("context", "other") == "c"
    interactions = layout.vw_interactions()
    assert device + layout.letter("action", "layout") in interactions
    assert "ca" in interactions


@pytest.mark.parametrize("term", ["user.*", "context", "context.a b", "action."])
def test_layout_rejects_bad_terms(term):
    with pytest.raises(ValueError, match="interaction term"):
        NamespaceLayout(((term, "action.*"),))


def test_long_string_value_error_names_feature():
    with pytest.raises(ValueError, match=r"value of feature context\.device\['type'\] is longer than 256"):
        validate_namespaces({"device": {"type": "x" * 300}})
