"""Kill the server with SIGKILL under load, many times, and report what survived.

The long version of ``tests/integration/test_crash.py``. It starts
``microbandit serve`` on loopback with a temporary data directory, runs a
steady Choose/ChooseBatch/Reward load from client threads, sends SIGKILL to
every process of the server's session at a random moment, checks the event
log against what the server acknowledged, restarts the server on the same
data directory, checks the restored model, and repeats. At the end it stops
the server cleanly and checks the whole log once more.

Per kill it reports the acknowledged rewards missing from the log (must be
0), the decisions answered but not logged and how long before the kill the
oldest of them was answered, corrupt segments, invalid PMFs, whether the
restored model equals the last checkpoint plus the replayed events, and the
restart time.

Usage::

    .venv/bin/python benchmarks/fault_injection.py --kills 8 --output fault-injection.json

Each kill costs about 25-35 s (Ray start-up dominates); keep the count
bounded on a shared machine. Run one Ray at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.client import DecisionClient  # noqa: E402
from serving.config import load_config  # noqa: E402
from serving.learner import policy_data_dir  # noqa: E402
from tests.integration.conftest import SYNTHETIC_POLICY, ServerProcess  # noqa: E402
from tests.integration.faults import (  # noqa: E402
    ACTIONS,
    LoadLedger,
    LoadRun,
    check_event_log,
    context_of,
    kill_server,
    percentile,
    replayed_model_pmf,
)

PROBE = context_of("s1", 12)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=8, help="number of SIGKILLs (default 8)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum seconds of load before a kill")
    parser.add_argument("--max-seconds", type=float, default=12.0, help="maximum seconds of load before a kill")
    parser.add_argument("--threads", type=int, default=2, help="client threads, each with one call in flight")
    parser.add_argument(
        "--reward-share", type=float, default=0.7, help="share of decisions that get a reward (default 0.7)"
    )
    parser.add_argument(
        "--checkpoint-interval", type=float, default=5.0, help="server checkpoint_interval_seconds (default 5)"
    )
    parser.add_argument("--seed", type=int, default=20261204, help="seed of kill times and load")
    parser.add_argument("--workdir", type=Path, help="directory for the data and server logs (default: a temporary one)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    return parser.parse_args(argv)


def _configure(server: ServerProcess, checkpoint_interval: float) -> None:
    config = yaml.safe_load(server.config_path.read_text())
    config["server"]["checkpoint_interval_seconds"] = checkpoint_interval
    server.config_path.write_text(yaml.safe_dump(config))


def _restart_and_check(server: ServerProcess, expected: dict[str, float]) -> tuple[float, Any, float]:
    started = time.monotonic()
    server.start()
    restart_seconds = time.monotonic() - started
    with DecisionClient(server.address, timeout=10.0) as client:
        client.wait_ready()
        info = client.get_policy(SYNTHETIC_POLICY)
        probe = client.choose(SYNTHETIC_POLICY, PROBE, ACTIONS, consent=False)
    difference = max(abs(p - expected[a]) for a, p in probe.pmf.items())
    return restart_seconds, info, difference


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the kills and return the figures."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="microbandit-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(workdir)
    _configure(server, args.checkpoint_interval)
    policy_dir = policy_data_dir(server.data_dir, SYNTHETIC_POLICY)
    settings = load_config(server.config_path).policy(SYNTHETIC_POLICY).build()
    generator = np.random.default_rng(args.seed)
    ledger = LoadLedger()
    lost_before: set[str] = set()
    kills: list[dict[str, Any]] = []

    server.start()
    try:
        for kill in range(args.kills):
            rewards_before = len(ledger.rewards)
            load_seconds = float(generator.uniform(args.min_seconds, args.max_seconds))
            load_started = time.time()
            with LoadRun(
                [server.address],
                SYNTHETIC_POLICY,
                ledger,
                threads=args.threads,
                seed=args.seed + 10 * kill,
                reward_share=args.reward_share,
            ):
                time.sleep(load_seconds)
                killed_at, processes = kill_server(server)
            check = check_event_log(policy_dir / "events", ledger)
            lost = {e: t for e, t in check.unlogged_decisions.items() if e not in lost_before}
            lost_before |= set(lost)
            expected, checkpointed, replayed = replayed_model_pmf(policy_dir, settings, PROBE)
            restart_seconds, info, difference = _restart_and_check(server, expected)
            latencies = ledger.latencies_since(load_started)
            reward_latencies = ledger.latencies_since(load_started, rewards_only=True)
            figures = {
                "kill": kill,
                "load_seconds": round(load_seconds, 2),
                "processes_killed": processes,
                "rewards_acknowledged": len(ledger.rewards) - rewards_before,
                "rewards_missing": len(check.missing_rewards),
                "rewarded_decisions_missing": len(check.rewarded_decisions_missing),
                "decisions_lost": len(lost),
                "oldest_lost_seconds_before_kill": round(max((killed_at - t for t in lost.values()), default=0.0), 3),
                "corrupt_segments": len(check.corrupt_segments),
                "invalid_pmfs": len(check.invalid_pmfs),
                "duplicate_decisions": len(check.duplicate_decision_ids),
                "segments": check.segments,
                "checkpointed_examples": checkpointed,
                "replayed_examples": replayed,
                "restored_examples_match": info.examples_learned == checkpointed + replayed == check.learnable_joined,
                "restored_pmf_max_difference": difference,
                "restart_seconds": round(restart_seconds, 1),
                "call_p50_ms": round(percentile(latencies, 50) * 1000, 2),
                "call_p99_ms": round(percentile(latencies, 99) * 1000, 2),
                "reward_p50_ms": round(percentile(reward_latencies, 50) * 1000, 2),
                "reward_p99_ms": round(percentile(reward_latencies, 99) * 1000, 2),
            }
            kills.append(figures)
            print(json.dumps(figures), flush=True)

        with LoadRun([server.address], SYNTHETIC_POLICY, ledger, threads=args.threads, seed=args.seed - 1):
            time.sleep(args.min_seconds)
        server.stop()
        final = check_event_log(policy_dir / "events", ledger)
    finally:
        if server.running:
            server.kill()

    lost_counts = [k["decisions_lost"] for k in kills]
    summary = {
        "kills": len(kills),
        "rewards_acknowledged": len(ledger.rewards),
        "rewards_missing": len(final.missing_rewards),
        "decisions_answered": len(ledger.decisions),
        "decisions_lost_total": len(final.unlogged_decisions),
        "decisions_lost_per_kill_median": statistics.median(lost_counts) if lost_counts else 0,
        "decisions_lost_per_kill_max": max(lost_counts, default=0),
        "oldest_lost_seconds_before_kill": max((k["oldest_lost_seconds_before_kill"] for k in kills), default=0.0),
        "corrupt_segments": len(final.corrupt_segments),
        "invalid_pmfs": len(final.invalid_pmfs),
        "duplicate_decisions": len(final.duplicate_decision_ids),
        "restores_matching": sum(k["restored_examples_match"] and k["restored_pmf_max_difference"] <= 1e-6 for k in kills),
        "segments_at_end": final.segments,
        "repeated_event_ids": ledger.repeated_event_ids,
        "errors": dict(ledger.errors),
        "reward_statuses": dict(ledger.reward_statuses),
        "restart_seconds_median": statistics.median(k["restart_seconds"] for k in kills) if kills else 0.0,
        "reward_p50_ms": round(percentile([s for _, s in ledger.reward_latencies], 50) * 1000, 2),
        "reward_p99_ms": round(percentile([s for _, s in ledger.reward_latencies], 99) * 1000, 2),
        "call_p50_ms": round(percentile([s for _, s in ledger.latencies], 50) * 1000, 2),
        "call_p99_ms": round(percentile([s for _, s in ledger.latencies], 99) * 1000, 2),
    }
    return {"per_kill": kills, "summary": summary, "workdir": str(workdir)}


def main(argv: list[str] | None = None) -> int:
    """Run the fault injection and print the figures."""
    args = _parse_args(argv)
    result = run(args)
    print(json.dumps(result["summary"], indent=2))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    summary = result["summary"]
    failed = summary["rewards_missing"] or summary["corrupt_segments"] or summary["invalid_pmfs"]
    return 1 if failed or summary["restores_matching"] != summary["kills"] else 0


if __name__ == "__main__":
    sys.exit(main())
