"""Inputs the server fuzz test found failing, kept as fast regression tests without Ray."""

from __future__ import annotations

import pytest

from bandit.features import Action, Encoder
from bandit.loop import DecisionLoop
from bandit.policy import Policy
from bandit.settings import PolicySettings

START = 1_800_000_000.0
# Rewards in [-1, 1] whose cost VW 9.11's label parser read as NaN before
# costs below float32's smallest normal number were written as 0.0.
TINY_REWARDS = [-9.858653647200317e-209, -1.5e-209, 1.5e-130, -5e-324, 1e-39]


@pytest.mark.parametrize("reward", TINY_REWARDS)
def test_tiny_reward_keeps_weights_finite(reward: float) -> None:
    clock = [START]
    loop = DecisionLoop(PolicySettings("p", reward_range=(-1.0, 1.0)), None, clock=lambda: clock[0])
    try:
        for index in range(5):
            clock[0] += 1.0
            decision = loop.choose({"user": {"kind": f"k{index}"}}, [Action("a", {}), Action("b", {})])
            loop.reward(decision.event_id, reward)
            loop.advance()
        assert loop.policy.examples_learned == 5
        assert loop.policy.has_finite_weights()
    finally:
        loop.close()


def test_tiny_cost_written_as_zero() -> None:
    settings = PolicySettings("p")
    encoder = Encoder(settings.layout)
    lines = encoder.example_lines({"user": {"kind": "k"}}, [Action("a", {}), Action("b", {})], (1, 1.5e-209, 0.5))
    assert lines[2].startswith("0:0.0:0.5 ")
    assert not lines[1].startswith("0:")


def test_nan_weights_detected() -> None:
    policy = Policy(PolicySettings("p"))
    try:
        assert policy.has_finite_weights()
        # The label that produced NaN weights in VW 9.11, fed to VW directly.
        examples = policy._workspace.parse(["shared |s x:1", "0:1.5e-209:0.5 |a a1", "|a a2"])
        policy._workspace.learn(examples)
        policy._workspace.finish_example(examples)
        assert not policy.has_finite_weights()
    finally:
        policy.close()
