"""Benchmark the in-process decision loop against raw VW on pre-parsed examples.

For 5, 20 and 100 actions (about 20 shared features, 5 per action, the
action set repeating), measure in the same process:

* decisions per second of ``DecisionLoop.choose`` (validation, encoding,
  cached action examples, VW predict, PMF check, sampling, join bookkeeping);
* raw ``Workspace.predict`` on an already parsed multi-line example;
* learns per second of ``DecisionLoop.advance`` (join, encode, parse, learn);
* raw ``Workspace.learn`` on an already parsed labelled example.

Run: ``.venv/bin/python benchmarks/bench_loop.py [--decisions N]``. Prints a
Markdown table; the ratio columns are loop cost over raw VW cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import vowpalwabbit
import pylibvw  # the compiled binding shipped with the vowpalwabbit wheel

from bandit import Action, DecisionLoop, JoinSettings, PolicySettings, SquareCB
from bandit.features import Encoder, validate_namespaces


def _contexts(rng: np.random.Generator, count: int) -> list[dict]:
    contexts = []
    for _ in range(count):
        contexts.append(
            {
                "user": {f"u{j}": f"v{int(rng.integers(10))}" for j in range(10)},
                "session": {f"s{j}": float(rng.random()) for j in range(10)},
            }
        )
    return contexts


def _actions(n: int) -> list[Action]:
    return [
        Action(f"action{i}", {"item": {"style": f"s{i % 7}", "color": f"c{i % 5}", "size": float(i % 3),
                                       "promo": i % 2 == 0, "rank": float(i)}})
        for i in range(n)
    ]


def _best_of(repeats: int, run) -> float:
    """Return the median per-call seconds over ``repeats`` timed runs."""
    return statistics.median(run() for _ in range(repeats))


def bench(n_actions: int, decisions: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(n_actions)
    contexts = _contexts(rng, 256)
    actions = _actions(n_actions)
    settings = PolicySettings(
        "bench", exploration=SquareCB(), seed=1,
        join=JoinSettings(reward_wait_time=1e9, max_pending=decisions * (repeats + 2)),
    )

    clock = [1_700_000_000.0]
    loop = DecisionLoop(settings, clock=lambda: clock[0])
    for context in contexts[:16]:  # warm the action cache
        loop.choose(context, actions)

    def run_choose() -> float:
        start = time.perf_counter()
        for i in range(decisions):
            loop.choose(contexts[i & 255], actions)
        return (time.perf_counter() - start) / decisions

    choose_cost = _best_of(repeats, run_choose)

    def run_advance() -> float:
        # Every pending decision joins with the default reward and is learned.
        count = loop.learner.joiner.pending_count
        clock[0] += 2e9
        start = time.perf_counter()
        joined = loop.advance()
        elapsed = time.perf_counter() - start
        assert len(joined) == count
        for i in range(decisions):  # refill for the next repeat
            loop.choose(contexts[i & 255], actions)
        return elapsed / count

    learn_cost = _best_of(repeats, run_advance)

    workspace = vowpalwabbit.Workspace(" ".join(settings.vw_command()))
    encoder = Encoder(settings.layout)
    parsed = [workspace.parse(encoder.example_lines(validate_namespaces(c), actions)) for c in contexts[:64]]
    labelled = [
        workspace.parse(encoder.example_lines(validate_namespaces(c), actions, (i % n_actions, -1.0, 0.5)))
        for i, c in enumerate(contexts[:64])
    ]

    def run_raw_predict() -> float:
        # The fastest predict path of the binding: no wrapper dispatch.
        start = time.perf_counter()
        for i in range(decisions):
            examples = parsed[i & 63]
            pylibvw.vw.predict_multi(workspace, examples)
            examples[0].get_action_scores()
        return (time.perf_counter() - start) / decisions

    def run_raw_learn() -> float:
        start = time.perf_counter()
        for i in range(decisions):
            pylibvw.vw.learn_multi(workspace, labelled[i & 63])
        return (time.perf_counter() - start) / decisions

    raw_predict = _best_of(repeats, run_raw_predict)
    raw_learn = _best_of(repeats, run_raw_learn)
    return {
        "actions": n_actions,
        "loop_decisions_per_s": 1 / choose_cost,
        "raw_predicts_per_s": 1 / raw_predict,
        "decision_cost_ratio": choose_cost / raw_predict,
        "loop_learns_per_s": 1 / learn_cost,
        "raw_learns_per_s": 1 / raw_learn,
        "learn_cost_ratio": learn_cost / raw_learn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000, help="calls per timed run (default 3000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is kept")
    args = parser.parse_args()
    print("| actions | loop decisions/s | raw VW predicts/s | decision cost ratio | loop learns/s | raw VW learns/s | learn cost ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n_actions in (5, 20, 100):
        decisions = args.decisions if n_actions <= 20 else max(args.decisions // 4, 200)
        r = bench(n_actions, decisions, args.repeats)
        print(
            f"| {r['actions']} | {r['loop_decisions_per_s']:,.0f} | {r['raw_predicts_per_s']:,.0f} | "
            f"{r['decision_cost_ratio']:.2f}x | {r['loop_learns_per_s']:,.0f} | {r['raw_learns_per_s']:,.0f} | "
            f"{r['learn_cost_ratio']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
