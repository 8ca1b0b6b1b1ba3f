"""``microbandit simulate``: run a scenario, print a summary, write results and plots.

Example::

    microbandit simulate micro --policies uniform,baseline,squarecb,oracle \\
        --rounds 20000 --seeds 5 --out out/micro

writes ``rounds.parquet`` (one row per policy, seed and round),
``per_seed.csv``, ``summary.csv``, ``summary.json``, ``baseline_rules.yaml``
and four PNG plots into ``--out``, and with ``--log-events`` each policy's
event log under ``--out/logs/POLICY/seed-SEED/events``, which
``microbandit evaluate`` reads.

With ``--server HOST:PORT`` the served policies named in ``--policies``
are played through a running ``microbandit serve`` over gRPC (see
:mod:`simulations.grpc_runner`), and ``--compare-in-process`` adds each
one's in-process replica and writes ``runner_comparison.csv`` and
``runner_comparison.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulations.catalog import SCENARIOS, ScenarioOptions, build_scenario
from simulations.policies import PRESETS, REFERENCE_KINDS, resolve_policies
from simulations.results import SimulationResult
from simulations.runner import RunSettings, run_simulation

__all__ = ["register", "run_command", "format_summary"]

logger = logging.getLogger(__name__)

DEFAULT_POLICIES = "uniform,baseline,epsilon-greedy,squarecb,bag,cover,softmax,oracle"
REPLAY_SCENARIO = "obd-replay"
NOISY_LOGGERS = ("bandit", "offline_eval")
"""Loggers raised to WARNING while a progress bar is shown: their INFO lines
(a checkpoint written at the end of each policy's run, for example) would
break the bar's line."""


@contextlib.contextmanager
def quiet_loggers(enabled: bool, names: Sequence[str] = NOISY_LOGGERS) -> Iterator[None]:
    """Raise the named loggers to WARNING for the duration, when ``enabled``."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    levels = [item.level for item in loggers]
    for item in loggers:
        if item.getEffectiveLevel() < logging.WARNING:
            item.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for item, level in zip(loggers, levels):
            item.setLevel(level)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand to the ``microbandit`` parser."""
    scenario_lines = "; ".join(f"{name}: {description}" for name, (_, description) in SCENARIOS.items())
    policy_lines = "; ".join(f"{name}: {spec.description}" for name, spec in PRESETS.items())
    parser = subparsers.add_parser(
        "simulate",
        help="compare exploration strategies on a simulated scenario",
        description=(
            "Run every policy on the same seeded visitors, print mean reward, cumulative regret and lift over "
            f"the baseline with 95%% intervals across seeds, and write results and plots. Scenarios: "
            f"{scenario_lines}. Policies: {policy_lines}."
        ),
    )
    parser.add_argument(
        "scenario",
        choices=sorted([*SCENARIOS, REPLAY_SCENARIO]),
        metavar="SCENARIO",
        help=f"scenario name, or {REPLAY_SCENARIO} to replay the Open Bandit Dataset's uniformly random sample",
    )
    parser.add_argument(
        "--campaign", choices=("all", "men", "women"), default="men", help="Open Bandit Dataset campaign of obd-replay"
    )
    parser.add_argument(
        "--policies",
        default=None,
        help=(
            f"comma-separated policy names (default: {DEFAULT_POLICIES}); with --server, names of served "
            "policies plus any of uniform, baseline, oracle (default: every served policy, uniform, baseline, oracle)"
        ),
    )
    parser.add_argument("--rounds", type=_positive_int, default=20_000, help="visitors per seed (default: 20000)")
    parser.add_argument("--seeds", type=_positive_int, default=5, help="number of seeds (default: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed; seeds are consecutive (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help=(
            "play the served policies through a running `microbandit serve` over gRPC; their reward join comes "
            "from the server's configuration"
        ),
    )
    parser.add_argument(
        "--compare-in-process",
        action="store_true",
        help="with --server, also play each served policy's configuration in-process and report the difference",
    )
    parser.add_argument(
        "--sync-every",
        type=int,
        default=0,
        metavar="ROUNDS",
        help=(
            "with --server, wait every ROUNDS rounds until the served model has learned every closed event "
            "(default: 0, only at the end of each seed)"
        ),
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        help="with --server, visitors per wall-clock second (default: as fast as the server responds)",
    )
    parser.add_argument(
        "--timeout", type=_positive_float, default=10.0, help="with --server, seconds per gRPC call (default: 10)"
    )
    parser.add_argument(
        "--token-env",
        metavar="VARIABLE",
        help="with --server, environment variable holding the server's bearer token (for server.auth_token_env)",
    )
    parser.add_argument(
        "--run-id",
        default="",
        help="prefix of every event id, so that a server that saw the same seeds before accepts them as new",
    )
    parser.add_argument(
        "--interval", type=_positive_float, default=10.0, help="simulated seconds between visitors (default: 10)"
    )
    parser.add_argument(
        "--reward-wait-time",
        type=_non_negative_float,
        default=600.0,
        help="seconds a VW policy waits for a reward before learning the default reward (default: 600)",
    )
    parser.add_argument("--default-reward", type=float, default=0.0, help="reward learned when none arrives (default: 0)")
    parser.add_argument(
        "--aggregation",
        choices=("earliest", "sum", "mean", "max", "min"),
        default="earliest",
        help="how several rewards of one event combine (default: earliest)",
    )
    parser.add_argument("--change-round", type=int, help="round of the drift (default: halfway)")
    parser.add_argument("--drift-width", type=_positive_int, default=2000, help="rounds of a gradual drift (default: 2000)")
    parser.add_argument("--baseline", default="baseline", help="policy the lift is computed against (default: baseline)")
    parser.add_argument("--workers", type=_positive_int, default=1, help="processes running (policy, seed) jobs (default: 1)")
    parser.add_argument("--log-events", action="store_true", help="write each policy's event log under OUT/logs")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run_command)


def _cell(mean: float, low: float, high: float, digits: int, percent: bool = False) -> str:
    scale = 100.0 if percent else 1.0
    suffix = "%" if percent else ""
    if math.isnan(mean):
        return "n/a"
    text = f"{mean * scale:.{digits}f}{suffix}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
    return text


def format_summary(summary: pd.DataFrame, baseline: str | None) -> str:
    """Return the summary as an aligned text table with 95% intervals in brackets."""
    headers = ["policy", "mean reward", "cumulative regret"]
    has_lift = "lift" in summary.columns
    if has_lift:
        headers.append(f"lift over {baseline}")
    rows = []
    for record in summary.to_dict("records"):
        row = [
            str(record["policy"]),
            _cell(record["mean_reward"], record["mean_reward_low"], record["mean_reward_high"], 4),
            _cell(record["cumulative_regret"], record["cumulative_regret_low"], record["cumulative_regret_high"], 1),
        ]
        if has_lift:
            row.append(_cell(record["lift"], record["lift_low"], record["lift_high"], 1, percent=True))
        rows.append(row)
    return _align(headers, rows)


def _align(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    """Run ``microbandit simulate`` and return the exit status."""
    from tqdm import tqdm

    if args.scenario == REPLAY_SCENARIO:
        return _run_replay(args)
    if args.server:
        return _run_server(args)
    try:
        policies = resolve_policies(_names(args.policies or DEFAULT_POLICIES))
        scenario = build_scenario(
            args.scenario,
            ScenarioOptions(rounds=args.rounds, change_round=args.change_round, drift_width=args.drift_width),
        )
        settings = RunSettings(
            rounds=args.rounds,
            seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
            interval_s=args.interval,
            reward_wait_time=args.reward_wait_time,
            default_reward=args.default_reward,
            aggregation=args.aggregation,
            event_prefix=args.run_id,
        )
    except ValueError as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 2
    if args.compare_in_process or args.sync_every or args.rate is not None or args.token_env:
        print(
            "microbandit simulate: --compare-in-process, --sync-every, --rate and --token-env apply only with --server",
            file=sys.stderr,
        )
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_root = out / "logs" if args.log_events else None
    total = args.rounds * args.seeds * len(policies)
    show = not args.no_progress
    with tqdm(total=total, unit="round", disable=not show, desc=args.scenario, file=sys.stderr) as bar, \
            quiet_loggers(show):
        result = run_simulation(
            scenario, policies, settings, log_root=log_root, workers=args.workers, progress=bar.update
        )
    _report(result, out, args, scenario, log_root)
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _report(
    result: SimulationResult, out: Path, args: argparse.Namespace, scenario: Any, log_root: Path | None
) -> None:
    """Save the result, draw the plots and print the summary and the paths written."""
    baseline = args.baseline if args.baseline in result.policies else None
    paths = result.save(out, baseline)
    rules = scenario.baseline_rules()
    rules_path = None
    if rules is not None:
        rules_path = out / "baseline_rules.yaml"
        rules_path.write_text(yaml.safe_dump(rules.to_dict(), sort_keys=False))
    plots = [] if args.no_plots else _plot(result, out, baseline)
    print(format_summary(result.summary(baseline), baseline))
    print()
    print(f"per-round results: {paths['rounds']}")
    print(f"summary:           {paths['summary_csv']}, {paths['summary_json']}")
    if rules_path is not None:
        print(f"baseline rules:    {rules_path} (microbandit evaluate --target baseline:{rules_path})")
    if plots:
        print(f"plots:             {', '.join(str(p) for p in plots)}")
    if log_root is not None:
        print(f"event logs:        {log_root}/POLICY/seed-SEED/events")


def _run_server(args: argparse.Namespace) -> int:
    """Run ``microbandit simulate --server``: served policies over gRPC, reference policies in-process."""
    from tqdm import tqdm

    from serving.client import ClientError, DecisionClient
    from simulations.grpc_runner import (
        ServerRunSettings,
        ServerSimulationError,
        compare_runners,
        comparison_to_dict,
        run_server_simulation,
    )

    if args.workers != 1:
        print("microbandit simulate: --workers does not apply with --server (served policies play in order)",
              file=sys.stderr)
        return 2
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"microbandit simulate: --token-env names {args.token_env}, which is not set or empty",
                  file=sys.stderr)
            return 2
    try:
        server = ServerRunSettings(
            args.server, timeout=args.timeout, sync_every=args.sync_every, rate=args.rate, token=token
        )
        scenario = build_scenario(
            args.scenario,
            ScenarioOptions(rounds=args.rounds, change_round=args.change_round, drift_width=args.drift_width),
        )
        settings = RunSettings(
            rounds=args.rounds,
            seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
            interval_s=args.interval,
            reward_wait_time=args.reward_wait_time,
            default_reward=args.default_reward,
            aggregation=args.aggregation,
            event_prefix=args.run_id,
        )
    except ValueError as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_root = out / "logs" if args.log_events else None
    show = not args.no_progress
    try:
        with DecisionClient(server.address, timeout=server.timeout, token=server.token) as client:
            client.wait_ready(timeout=server.timeout)
            if args.policies is None:
                names = [p.name for p in client.list_policies()] + list(REFERENCE_KINDS)
            else:
                names = _names(args.policies)
            reference_names = [n for n in names if n in REFERENCE_KINDS]
            references = resolve_policies(reference_names) if reference_names else []
            served = [n for n in names if n not in REFERENCE_KINDS]
            presets = [n for n in served if n in PRESETS]
            if presets:
                raise ValueError(
                    f"{presets} are VW presets of the in-process runner; with --server, name served policies "
                    f"(this server serves {sorted(p.name for p in client.list_policies())})"
                )
            played = len(names) + (len(served) if args.compare_in_process else 0)
            total = args.rounds * args.seeds * played
            if args.seeds > 1 and served:
                logger.info(
                    "seeds play one after the other and share the served model: seed k starts with what seeds "
                    "before it taught the server"
                )
            with tqdm(total=total, unit="round", disable=not show, desc=f"{args.scenario} via {server.address}",
                      file=sys.stderr) as bar, quiet_loggers(show):
                result = run_server_simulation(
                    scenario,
                    served,
                    references,
                    settings,
                    server,
                    compare_in_process=args.compare_in_process,
                    log_root=log_root,
                    progress=bar.update,
                    client=client,
                )
    except (ValueError, TimeoutError) as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 2
    except (ClientError, ServerSimulationError) as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 1

    _report(result, out, args, scenario, log_root)
    for entry in result.metadata["policies"]:
        if entry.get("kind") == "served":
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(entry["reward_statuses"].items()))
            print(
                f"served policy {entry['name']}: model version {entry['model_version_before']} -> "
                f"{entry['model_version_after_seed'][-1]}, default rewards sent at simulated window ends "
                f"{entry['default_rewards_sent']}, reward statuses: {statuses}; its event log is in the server's "
                f"data directory under policies/{entry['name']}/events"
            )
    if args.compare_in_process:
        documents = []
        frames = []
        for name in served:
            comparison = compare_runners(result, name)
            documents.append(comparison_to_dict(comparison))
            frames.append(comparison["per_seed"].assign(policy=name))
            print()
            print(format_comparison(comparison))
        pd.concat(frames, ignore_index=True).to_csv(out / "runner_comparison.csv", index=False)
        (out / "runner_comparison.json").write_text(json.dumps(documents, indent=2) + "\n")
        print(f"runner comparison: {out / 'runner_comparison.csv'}, {out / 'runner_comparison.json'}")
    return 0


def format_comparison(comparison: dict[str, Any]) -> str:
    """Return a :func:`~simulations.grpc_runner.compare_runners` result as an aligned text table."""
    headers = ["seed", "mean reward", "expected reward", "rounds per model version", "same action before 1st update"]
    rows = []
    for row in comparison["per_seed"].to_dict("records"):
        same = row["same_action_before_first_update"]
        before = row["rounds_before_first_update"]
        rows.append(
            [
                str(row["seed"]),
                f"{row['grpc_mean_reward']:.4f} / {row['in_process_mean_reward']:.4f}",
                f"{row['grpc_mean_expected_reward']:.4f} / {row['in_process_mean_expected_reward']:.4f}",
                f"{row['grpc_rounds_per_model_version']:.1f} / {row['in_process_rounds_per_model_version']:.1f}",
                "n/a" if math.isnan(same) else f"{same:.0%} of {int(before)} rounds",
            ]
        )
    reward = comparison["mean_reward_difference"]
    expected = comparison["expected_reward_difference"]
    return "\n".join(
        [
            f"{comparison['policy']}: gRPC run / in-process replica",
            _align(headers, rows),
            f"difference gRPC - in-process: mean reward {_cell(reward.mean, reward.low, reward.high, 4)}, "
            f"expected reward {_cell(expected.mean, expected.low, expected.high, 4)}",
        ]
    )


def _plot(result: SimulationResult, out: Path, baseline: str | None) -> list[Path]:
    from simulations.plots import plot_all

    return plot_all(result, out, baseline or "baseline")


def _run_replay(args: argparse.Namespace) -> int:
    """Replay the Open Bandit Dataset sample; ``--rounds`` and the clock options do not apply."""
    from tqdm import tqdm

    from simulations.replay import replay_obd

    names = [name for name in _names(args.policies or DEFAULT_POLICIES) if name != "oracle"]
    try:
        policies = resolve_policies(names)
    except ValueError as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 2
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(unit="event", disable=args.no_progress, desc=REPLAY_SCENARIO, file=sys.stderr) as bar:
        result = replay_obd(policies, seeds, campaign=args.campaign, progress=bar.update)
    events_path = out / "replay_events.parquet"
    summary_path = out / "replay_summary.csv"
    result.events.to_parquet(events_path, compression="zstd", index=False)
    summary = result.summary()
    summary.to_csv(summary_path, index=False)
    print(f"replay of {result.source}")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print()
    print(f"per-event results: {events_path}")
    print(f"summary:           {summary_path}")
    if not args.no_plots:
        from simulations.plots import plot_replay

        print(f"plot:              {plot_replay(result, out / 'replay_learning_curve.png')}")
    return 0
