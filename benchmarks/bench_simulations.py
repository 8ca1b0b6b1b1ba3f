"""Benchmark the in-process simulation runner against raw VW predict+learn.

On the micro-adjustment scenario (12 actions), measure in the same process:

* rounds per second of :func:`simulations.runner.run_policy` with squarecb
  through :class:`bandit.loop.DecisionLoop` (simulated clock, reward join,
  learning, result arrays), without and with the Parquet event log;
* rounds per second of a bare VW simulation on the same visitors and the
  same VW arguments: the example text formatted before timing, then per
  round ``Workspace.predict`` on the text lines, sampling, and
  ``Workspace.learn`` on the labelled lines at once (no join, no log);
* the same bare loop on examples parsed before timing (VW's fastest path
  from Python), as a second reference.

Run: ``.venv/bin/python benchmarks/bench_simulations.py [--rounds N] [--repeats K]``.
Prints a Markdown table; each figure is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import vowpalwabbit

from bandit.features import Encoder
from bandit.settings import PolicySettings
from simulations.micro import MicroAdjustmentScenario
from simulations.policies import resolve_policies
from simulations.runner import RunSettings, run_policy
from simulations.scenario import derive_seed


def _runner_rate(rounds: int, log: bool) -> float:
    scenario = MicroAdjustmentScenario()
    stream = scenario.stream(0, rounds)
    settings = RunSettings(rounds=rounds, seeds=(0,), interval_s=10.0)
    spec = resolve_policies(["squarecb"])[0]
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as directory:
        started = time.perf_counter()
        run_policy(scenario, spec, stream, settings, log_dir=directory if log else None)
        return rounds / (time.perf_counter() - started)


def _vw_arguments() -> tuple[str, PolicySettings]:
    scenario = MicroAdjustmentScenario()
    spec = resolve_policies(["squarecb"])[0]
    settings = spec.settings(
        seed=derive_seed(0, spec.name) % (2**31 - 1),
        join=RunSettings(rounds=1, seeds=(0,)).join_settings(),
        interactions=scenario.interactions,
    )
    return " ".join(settings.vw_command()), settings


def _raw_rate(rounds: int, pre_parsed: bool) -> float:
    scenario = MicroAdjustmentScenario()
    stream = scenario.stream(0, rounds)
    arguments, settings = _vw_arguments()
    encoder = Encoder(settings.layout)
    workspace = vowpalwabbit.Workspace(arguments)
    rng = np.random.default_rng(0)
    unlabelled = [encoder.example_lines(c, stream.actions) for c in stream.contexts]
    draws = rng.random(rounds)
    parsed = [workspace.parse(lines) for lines in unlabelled] if pre_parsed else None

    started = time.perf_counter()
    for t in range(rounds):
        if parsed is not None:
            pmf = workspace.predict(parsed[t])
        else:
            pmf = workspace.predict(unlabelled[t])
        index = int(np.searchsorted(np.cumsum(pmf), draws[t] * sum(pmf), side="right"))
        index = min(index, len(pmf) - 1)
        reward = stream.realized_reward(t, index)
        labelled = encoder.example_lines(stream.contexts[t], stream.actions, (index, -reward, float(pmf[index])))
        workspace.learn(labelled)
    elapsed = time.perf_counter() - started

    if parsed is not None:
        for examples in parsed:
            workspace.finish_example(examples)
    workspace.finish()
    return rounds / elapsed


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000, help="rounds per timed run (default: 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (default: 3)")
    args = parser.parse_args()

    figures = {
        "runner, no event log": [],
        "runner, event log": [],
        "raw VW, text each round": [],
        "raw VW, pre-parsed": [],
    }
    for _ in range(args.repeats):
        figures["runner, no event log"].append(_runner_rate(args.rounds, log=False))
        figures["runner, event log"].append(_runner_rate(args.rounds, log=True))
        figures["raw VW, text each round"].append(_raw_rate(args.rounds, pre_parsed=False))
        figures["raw VW, pre-parsed"].append(_raw_rate(args.rounds, pre_parsed=True))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    reference = medians["raw VW, text each round"]
    print(f"12 actions, squarecb, {args.rounds} rounds per run, median of {args.repeats} runs\n")
    print("| loop | rounds/s | ratio to raw VW (text each round) |")
    print("| --- | --- | --- |")
    for name, value in medians.items():
        print(f"| {name} | {value:,.0f} | {value / reference:.2f} |")


if __name__ == "__main__":
    main()
