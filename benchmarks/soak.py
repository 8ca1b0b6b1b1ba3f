"""Soak the server: sustained load for a configurable time, then an overload and the recovery.

The long version of ``tests/integration/test_soak.py``. It starts
``microbandit serve`` on loopback with a temporary data directory and a short
reward window, then runs a steady Choose/ChooseBatch/Reward load from
client threads. Every report interval it prints the calls, the errors, the
p50 and p99 latency of that interval, the policy's pending decisions, the
number of event-log segments, and the RSS and PSS of every process of the
server. After the soak it overloads the decider replica with heavy
ChooseBatch calls and checks that the excess is rejected quickly with
UNAVAILABLE or RESOURCE_EXHAUSTED, then runs normal load again and checks
that it succeeds. Finally it stops the server cleanly and checks that every
acknowledged reward is in the event log.

Usage::

    .venv/bin/python benchmarks/soak.py --minutes 10 --output soak.json

Memory drift is measured from the first report (after start-up growth) to
the last one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.client import DecisionClient  # noqa: E402
from serving.learner import policy_data_dir  # noqa: E402
from tests.integration.conftest import SYNTHETIC_POLICY, ServerProcess  # noqa: E402
from tests.integration.faults import (  # noqa: E402
    LoadLedger,
    LoadRun,
    check_event_log,
    overload,
    percentile,
    process_memory,
)

MIB = 2**20


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of the sustained load (default 10)")
    parser.add_argument("--report-seconds", type=float, default=60.0, help="seconds between reports (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="client threads, each with one call in flight")
    parser.add_argument("--reward-wait", type=float, default=30.0, help="reward window of the policy, in seconds")
    parser.add_argument("--overload-seconds", type=float, default=20.0, help="duration of the overload (0 skips it)")
    parser.add_argument("--overload-in-flight", type=int, default=100, help="concurrent calls during the overload")
    parser.add_argument("--overload-batch", type=int, default=200, help="decisions per ChooseBatch during the overload")
    parser.add_argument("--seed", type=int, default=20261206, help="seed of the load")
    parser.add_argument("--workdir", type=Path, help="directory for the data and server logs (default: a temporary one)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    return parser.parse_args(argv)


def _configure(server: ServerProcess, reward_wait: float) -> None:
    config = yaml.safe_load(server.config_path.read_text())
    for policy in config["policies"]:
        if policy["name"] == SYNTHETIC_POLICY:
            policy["join"]["reward_wait_time_seconds"] = reward_wait
    server.config_path.write_text(yaml.safe_dump(config))


def _memory_by_name(server: ServerProcess) -> dict[str, dict[str, float]]:
    """Return process name (with pid) -> RSS and PSS in MiB."""
    return {
        f"{name}[{pid}]": {"rss_mib": round(rss / MIB, 1), "pss_mib": round(pss / MIB, 1)}
        for pid, (name, rss, pss) in sorted(process_memory(server).items())
    }


def _report(server: ServerProcess, ledger: LoadLedger, since: float, elapsed: float, calls_before: int) -> dict[str, Any]:
    latencies = ledger.latencies_since(since)
    memory = _memory_by_name(server)
    with DecisionClient(server.address, timeout=10.0) as client:
        info = client.get_policy(SYNTHETIC_POLICY)
    segments = len(list((policy_data_dir(server.data_dir, SYNTHETIC_POLICY) / "events").glob("*.parquet")))
    return {
        "minute": round(elapsed / 60.0, 2),
        "calls": len(ledger.latencies) - calls_before,
        "errors": sum(ledger.errors.values()),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "pending_decisions": info.pending_decisions,
        "segments": segments,
        "rss_total_mib": round(sum(m["rss_mib"] for m in memory.values()), 1),
        "pss_total_mib": round(sum(m["pss_mib"] for m in memory.values()), 1),
        "processes": memory,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak, the overload and the recovery; return the figures."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="microbandit-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(workdir)
    _configure(server, args.reward_wait)
    ledger = LoadLedger()
    reports: list[dict[str, Any]] = []
    result: dict[str, Any] = {"workdir": str(workdir)}

    server.start()
    try:
        started = time.time()
        with LoadRun([server.address], SYNTHETIC_POLICY, ledger, threads=args.threads, seed=args.seed):
            deadline = started + args.minutes * 60.0
            while time.time() < deadline:
                since = time.time()
                calls_before = len(ledger.latencies)
                time.sleep(min(args.report_seconds, max(0.0, deadline - since)))
                reports.append(_report(server, ledger, since, time.time() - started, calls_before))
                row = {k: v for k, v in reports[-1].items() if k != "processes"}
                print(json.dumps(row), flush=True)
        result["soak"] = {
            "seconds": round(time.time() - started, 1),
            "decisions": len(ledger.decisions),
            "rewards": len(ledger.rewards),
            "errors": dict(ledger.errors),
            "reports": reports,
        }

        if args.overload_seconds > 0:
            outcome = overload(
                server.address,
                SYNTHETIC_POLICY,
                args.overload_seconds,
                args.overload_in_flight,
                batch_size=args.overload_batch,
            )
            result["overload"] = {
                "codes": dict(outcome.codes),
                "rejected_p50_ms": round(percentile(outcome.rejected_latencies, 50) * 1000, 1),
                "rejected_p99_ms": round(percentile(outcome.rejected_latencies, 99) * 1000, 1),
                "answered_p99_ms": round(percentile(outcome.ok_latencies, 99) * 1000, 1),
            }
            print(json.dumps({"overload": result["overload"]}), flush=True)
            recovery = LoadLedger()
            recovery_started = time.time()
            with LoadRun([server.address], SYNTHETIC_POLICY, recovery, threads=args.threads, seed=args.seed + 1):
                time.sleep(30.0)
            latencies = recovery.latencies_since(recovery_started)
            result["recovery"] = {
                "calls": len(latencies),
                "errors": dict(recovery.errors),
                "p50_ms": round(percentile(latencies, 50) * 1000, 2),
                "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            }
            print(json.dumps({"recovery": result["recovery"]}), flush=True)
            ledger.rewards.update(recovery.rewards)

        server.stop()
        check = check_event_log(policy_data_dir(server.data_dir, SYNTHETIC_POLICY) / "events", ledger)
        result["log"] = {
            "rewards_missing": len(check.missing_rewards),
            "corrupt_segments": len(check.corrupt_segments),
            "invalid_pmfs": len(check.invalid_pmfs),
            "segments": check.segments,
        }
    finally:
        if server.running:
            server.kill()

    if len(reports) >= 2:
        first, last = reports[0], reports[-1]
        result["memory_drift"] = {
            "from_minute": first["minute"],
            "to_minute": last["minute"],
            "rss_total_mib": round(last["rss_total_mib"] - first["rss_total_mib"], 1),
            "rss_total_percent": round(100.0 * (last["rss_total_mib"] / first["rss_total_mib"] - 1.0), 2),
            "pss_total_mib": round(last["pss_total_mib"] - first["pss_total_mib"], 1),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the summary."""
    args = _parse_args(argv)
    result = run(args)
    summary = {k: v for k, v in result.items() if k != "soak"}
    summary["soak_errors"] = result["soak"]["errors"]
    print(json.dumps(summary, indent=2))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    failed = result["soak"]["errors"] or result.get("recovery", {}).get("errors") or result["log"]["rewards_missing"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
