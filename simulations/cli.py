"""``microbandit simulate``: run a scenario, print a summary, write results and plots.

Example::

    microbandit simulate micro --policies uniform,baseline,squarecb,oracle \\
        --rounds 20000 --seeds 5 --out out/micro

writes ``rounds.parquet`` (one row per policy, seed and round),
``per_seed.csv``, ``summary.csv``, ``summary.json`` and four PNG plots into
``--out``, and with ``--log-events`` each policy's event log under
``--out/logs/POLICY/seed-SEED/events``, which ``microbandit evaluate`` reads.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from simulations.catalog import SCENARIOS, ScenarioOptions, build_scenario
from simulations.policies import PRESETS, resolve_policies
from simulations.results import SimulationResult
from simulations.runner import RunSettings, run_simulation

__all__ = ["register", "run_command", "format_summary"]

logger = logging.getLogger(__name__)

DEFAULT_POLICIES = "uniform,baseline,epsilon-greedy,squarecb,bag,cover,softmax,oracle"
REPLAY_SCENARIO = "obd-replay"


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
        default=DEFAULT_POLICIES,
        help=f"comma-separated policy names (default: {DEFAULT_POLICIES})",
    )
    parser.add_argument("--rounds", type=_positive_int, default=20_000, help="visitors per seed (default: 20000)")
    parser.add_argument("--seeds", type=_positive_int, default=5, help="number of seeds (default: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed; seeds are consecutive (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="drive a running `microbandit serve` over gRPC instead of the in-process loop",
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
    try:
        policies = resolve_policies([name.strip() for name in args.policies.split(",") if name.strip()])
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
        )
    except ValueError as error:
        print(f"microbandit simulate: {error}", file=sys.stderr)
        return 2

    if args.server:
        # NOTE: the gRPC runner is not implemented; --server is parsed so the
        # interface is stable, and rejected here.
        print("microbandit simulate: --server is not supported yet; run without it for the in-process runner",
              file=sys.stderr)
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_root = out / "logs" if args.log_events else None
    total = args.rounds * args.seeds * len(policies)
    with tqdm(total=total, unit="round", disable=args.no_progress, desc=args.scenario, file=sys.stderr) as bar:
        result = run_simulation(
            scenario, policies, settings, log_root=log_root, workers=args.workers, progress=bar.update
        )

    baseline = args.baseline if args.baseline in result.policies else None
    paths = result.save(out, baseline)
    plots = [] if args.no_plots else _plot(result, out, baseline)
    print(format_summary(result.summary(baseline), baseline))
    print()
    print(f"per-round results: {paths['rounds']}")
    print(f"summary:           {paths['summary_csv']}, {paths['summary_json']}")
    if plots:
        print(f"plots:             {', '.join(str(p) for p in plots)}")
    if log_root is not None:
        print(f"event logs:        {log_root}/POLICY/seed-SEED/events")
    return 0


def _plot(result: SimulationResult, out: Path, baseline: str | None) -> list[Path]:
    from simulations.plots import plot_all

    return plot_all(result, out, baseline or "baseline")


def _run_replay(args: argparse.Namespace) -> int:
    """Replay the Open Bandit Dataset sample; ``--rounds`` and the clock options do not apply."""
    from tqdm import tqdm

    from simulations.replay import replay_obd

    names = [name.strip() for name in args.policies.split(",") if name.strip()]
    names = [name for name in names if name != "oracle"]
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
