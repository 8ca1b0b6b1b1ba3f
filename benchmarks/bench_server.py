"""Latency, throughput and memory of the gRPC decision server, per Ray Serve ingress mode.

Every measurement runs on loopback with the server and the load generator in
separate processes:

* sequential Choose calls (10 actions each): p50 and p99 latency;
* 16 Choose calls in flight (``grpc.aio`` client): calls per second;
* ChooseBatch with 100 requests per call: decisions per second;
* memory (PSS and RSS) of every process of the server after the load.

The modes are the Ray Serve server (``microbandit serve``) with its gRPC
proxy, with direct ingress (one and two decider replicas) and with the
throughput-optimized preset (with and without Serve's access log), plus the
reference: the same decision path
(:class:`serving.decider.DeciderCore` feeding an in-process
:class:`serving.learner.LearnerService`) behind a plain ``grpc.aio`` server
without Ray. Ratios are taken against that reference, measured in the same
run.

Usage::

    .venv/bin/python benchmarks/bench_server.py --seconds 5 --output bench-server.json

Keep the load bounded on a shared machine: a full run takes about four
minutes (each Ray server start costs about 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protos.microbandit.v1 import decision_service_pb2 as pb  # noqa: E402
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc  # noqa: E402

POLICY = "bench"
ACTIONS = 10
IN_FLIGHT = 16
BATCH = 100
SEED = 20261204
READY_LINE = "microbandit: ready"
_ADDRESS_LINE = re.compile(r"microbandit: gRPC DecisionService on (\S+) \((.+)\)")
MODES = ("plain", "proxy", "direct", "direct_2_replicas", "throughput_optimized", "throughput_optimized_access_log")


# -- workload -------------------------------------------------------------------


def make_requests(count: int, seed: int = SEED) -> list[pb.ChooseRequest]:
    """Return ``count`` Choose requests with micro-adjustment contexts and 10 actions."""
    generator = np.random.default_rng(seed)
    ctas = ["buy_now", "add_to_cart", "see_details", "try_free", "learn_more"]
    actions = [
        pb.Action(
            id=f"{ctas[i % 5]}|img_{'large' if i % 2 else 'standard'}",
            features={
                "cta": pb.Namespace(features={"wording": pb.FeatureValue(string_value=ctas[i % 5])}),
                "image": pb.Namespace(features={"large": pb.FeatureValue(bool_value=bool(i % 2))}),
            },
        )
        for i in range(ACTIONS)
    ]
    requests = []
    for _ in range(count):
        device = ["mobile", "desktop", "tablet"][int(generator.integers(3))]
        network = ["wifi", "cellular"][int(generator.integers(2))]
        context = {
            "device": pb.Namespace(
                features={"type": pb.FeatureValue(string_value=device), "network": pb.FeatureValue(string_value=network)}
            ),
            "time": pb.Namespace(features={"hour": pb.FeatureValue(number_value=float(generator.integers(24)))}),
            "activity": pb.Namespace(
                features={
                    "last_category": pb.FeatureValue(string_value=f"cat{int(generator.integers(20))}"),
                    "minutes_since_view": pb.FeatureValue(number_value=float(generator.exponential(30.0))),
                    "visits_same_category": pb.FeatureValue(number_value=float(generator.integers(6))),
                }
            ),
        }
        requests.append(pb.ChooseRequest(policy=POLICY, context=context, actions=actions))
    return requests


def bench_config(data_dir: Path, grpc_port: int, mode: str) -> dict[str, Any]:
    """Return the server configuration of one mode."""
    ingress = {
        "proxy": "proxy",
        "throughput_optimized": "throughput_optimized",
        "throughput_optimized_access_log": "throughput_optimized",
    }.get(mode, "direct")
    return {
        "server": {
            "grpc_port": grpc_port,
            "direct_ingress_port_range": [grpc_port + 2, grpc_port + 12],
            "data_dir": str(data_dir),
            "ingress": ingress,
            "decider_replicas": 2 if mode == "direct_2_replicas" else 1,
            "decision_buffer_size": 50_000,
            "access_log": mode == "throughput_optimized_access_log",
        },
        "policies": [
            {
                "name": POLICY,
                "exploration": {"type": "squarecb"},
                "seed": 1,
                "join": {"reward_wait_time_seconds": 600, "max_pending": 5_000_000},
            }
        ],
    }


# -- load generator (runs in its own process) -------------------------------------


def run_load(targets: list[str], seconds: float, sequential_calls: int) -> dict[str, float]:
    """Measure sequential latency, 16-in-flight throughput and batch throughput."""
    requests = make_requests(1000)
    channels = [__import__("grpc").insecure_channel(t) for t in targets]
    stubs = [pb_grpc.DecisionServiceStub(c) for c in channels]
    for stub in stubs:
        for request in requests[:50]:
            stub.Choose(request, timeout=30)

    latencies = []
    for i in range(sequential_calls):
        stub = stubs[i % len(stubs)]
        started = time.perf_counter()
        stub.Choose(requests[i % len(requests)], timeout=30)
        latencies.append(time.perf_counter() - started)
    latencies_ms = np.array(latencies) * 1000.0

    concurrent_rate = asyncio.run(_in_flight(targets, requests, seconds))

    batches = [pb.ChooseBatchRequest(requests=requests[i : i + BATCH]) for i in range(0, len(requests), BATCH)]
    decisions = 0
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds:
        response = stubs[i % len(stubs)].ChooseBatch(batches[i % len(batches)], timeout=30)
        decisions += len(response.responses)
        i += 1
    batch_rate = decisions / (time.perf_counter() - started)
    for channel in channels:
        channel.close()
    return {
        "sequential_p50_ms": float(np.percentile(latencies_ms, 50)),
        "sequential_p99_ms": float(np.percentile(latencies_ms, 99)),
        "sequential_calls_per_s": float(1000.0 / statistics.fmean(latencies_ms)),
        "in_flight_16_calls_per_s": concurrent_rate,
        "batch_100_decisions_per_s": batch_rate,
    }


async def _in_flight(targets: list[str], requests: list[pb.ChooseRequest], seconds: float) -> float:
    import grpc

    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [pb_grpc.DecisionServiceStub(c) for c in channels]
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        stub = stubs[index % len(stubs)]
        j = index
        while time.perf_counter() < deadline:
            await stub.Choose(requests[j % len(requests)], timeout=30)
            done += 1
            j += IN_FLIGHT

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return done / elapsed


# -- plain grpc.aio reference server (runs in its own process) ---------------------


def run_plain_server(port: int, data_dir: Path) -> None:
    """Serve DecisionService.Choose/ChooseBatch with DeciderCore behind grpc.aio, no Ray."""
    import grpc

    from serving.config import parse_config
    from serving.decider import DeciderCore
    from serving.learner import LearnerService

    config = parse_config(bench_config(data_dir, port, "plain"))
    core = DeciderCore(config, b"bench-key", time.time)
    learner = LearnerService(config.policies[0], config.server, time.time)

    class Servicer(pb_grpc.DecisionServiceServicer):
        async def Choose(self, request, context):  # noqa: N802 - gRPC method name
            return core.choose(request)

        async def ChooseBatch(self, request, context):  # noqa: N802
            return core.choose_batch(request)

    async def drain() -> None:
        while True:
            await asyncio.sleep(config.server.decision_flush_interval_seconds)
            learner.submit_decisions(core.take_buffer(POLICY))
            learner.tick()

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_DecisionServiceServicer_to_server(Servicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        task = asyncio.get_running_loop().create_task(drain())
        print(f"microbandit: gRPC DecisionService on 127.0.0.1:{port} (plain grpc.aio)", flush=True)
        print(READY_LINE, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        task.cancel()
        await server.stop(1)

    asyncio.run(main())


# -- orchestration -------------------------------------------------------------------


def _free_port_block(count: int) -> int:
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        ok = True
        for port in range(first, first + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return first
    raise RuntimeError("no free block of loopback ports")


def _session_memory_mb(session: int) -> tuple[float, float, int]:
    """Return (PSS MB, RSS MB, process count) of every process in a session."""
    pss = rss = 0.0
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024.0
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024.0
            count += 1
        except OSError:
            continue
    return pss, rss, count


def _start(command: list[str], log_path: Path, timeout: float = 240.0) -> tuple[subprocess.Popen[bytes], list[str], float]:
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while time.monotonic() - started < timeout:
        text = log_path.read_text(errors="replace")
        if READY_LINE in text:
            addresses = _ADDRESS_LINE.findall(text)
            direct = [a for a, kind in addresses if "direct ingress" in kind]
            other = [a for a, kind in addresses if "direct ingress" not in kind]
            return process, direct or other, time.monotonic() - started
        if process.poll() is not None:
            raise RuntimeError(f"server exited during start-up:\n{text[-3000:]}")
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"server not ready within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return time.monotonic() - started


def measure_mode(mode: str, workdir: Path, seconds: float, sequential_calls: int) -> dict[str, Any]:
    """Start one server mode, run the load generator against it, stop it; return the figures."""
    base = _free_port_block(14)
    data_dir = workdir / mode / "data"
    data_dir.mkdir(parents=True)
    if mode == "plain":
        command = [sys.executable, __file__, "plain-server", "--port", str(base + 1), "--data-dir", str(data_dir)]
    else:
        config_path = workdir / mode / "server.yaml"
        config_path.write_text(yaml.safe_dump(bench_config(data_dir, base + 1, mode)))
        command = [sys.executable, "-m", "serving.cli", "serve", "--config", str(config_path), "--http-port", str(base)]
    process, targets, start_seconds = _start(command, workdir / mode / "server.log")
    try:
        load = subprocess.run(
            [sys.executable, __file__, "load", "--seconds", str(seconds), "--sequential-calls", str(sequential_calls), *targets],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(load.stdout.strip().splitlines()[-1])
        pss, rss, processes = _session_memory_mb(process.pid)
    finally:
        stop_seconds = _stop(process)
    figures.update(
        mode=mode,
        targets=targets,
        start_seconds=start_seconds,
        stop_seconds=stop_seconds,
        memory_pss_mb=pss,
        memory_rss_mb=rss,
        processes=processes,
    )
    return figures


def to_markdown(results: list[dict[str, Any]]) -> str:
    """Return the results as a Markdown table with ratios against the plain server."""
    plain = next((r for r in results if r["mode"] == "plain"), None)
    lines = [
        "| mode | seq. p50 ms | seq. p99 ms | 16 in flight, calls/s | ChooseBatch(100), decisions/s | "
        "batch vs plain | PSS MB | RSS MB | processes | start s | stop s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = r["batch_100_decisions_per_s"] / plain["batch_100_decisions_per_s"] if plain else float("nan")
        lines.append(
            f"| {r['mode']} | {r['sequential_p50_ms']:.2f} | {r['sequential_p99_ms']:.2f} | "
            f"{r['in_flight_16_calls_per_s']:.0f} | {r['batch_100_decisions_per_s']:.0f} | {ratio:.2f} | "
            f"{r['memory_pss_mb']:.0f} | {r['memory_rss_mb']:.0f} | {r['processes']} | "
            f"{r['start_seconds']:.1f} | {r['stop_seconds']:.1f} |"
        )
    if plain:
        lines.append("")
        lines.append("Ratios against the plain grpc.aio server (same run):")
        lines.append("")
        lines.append("| mode | p50 ratio | 16 in flight ratio | batch ratio |")
        lines.append("| --- | --- | --- | --- |")
        for r in results:
            lines.append(
                f"| {r['mode']} | {r['sequential_p50_ms'] / plain['sequential_p50_ms']:.2f} | "
                f"{r['in_flight_16_calls_per_s'] / plain['in_flight_16_calls_per_s']:.2f} | "
                f"{r['batch_100_decisions_per_s'] / plain['batch_100_decisions_per_s']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="measure every mode (default)")
    for p in (parser, run):
        p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes from {MODES}")
        p.add_argument("--seconds", type=float, default=5.0, help="seconds of each throughput measurement")
        p.add_argument("--sequential-calls", type=int, default=2000, help="sequential Choose calls timed")
        p.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    load = sub.add_parser("load", help="internal: run the load generator against targets")
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--sequential-calls", type=int, required=True)
    load.add_argument("targets", nargs="+")
    plain = sub.add_parser("plain-server", help="internal: run the plain grpc.aio reference server")
    plain.add_argument("--port", type=int, required=True)
    plain.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()

    if args.command == "load":
        print(json.dumps(run_load(args.targets, args.seconds, args.sequential_calls)))
        return
    if args.command == "plain-server":
        run_plain_server(args.port, args.data_dir)
        return

    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    results = []
    with tempfile.TemporaryDirectory(prefix="microbandit-bench-") as directory:
        for mode in modes:
            print(f"measuring {mode} ...", file=sys.stderr, flush=True)
            results.append(measure_mode(mode, Path(directory), args.seconds, args.sequential_calls))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(to_markdown(results))
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
