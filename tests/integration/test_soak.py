"""Short soak and overload of the real server; ``benchmarks/soak.py`` is the long version.

A steady Choose/ChooseBatch/Reward load runs for 40 s: no call may fail,
memory of the server's processes must stay flat, and decisions must leave
the join once their 5 s reward window closes. Then 100 concurrent
ChooseBatch calls of 200 decisions each overload the one decider replica:
about 3 s of work is queued, and without load shedding calls would wait
until their 10 s deadline. Once the replica's event loop runs more than
``max_queue_delay_seconds`` (0.25 s) late, calls must be rejected quickly
with RESOURCE_EXHAUSTED or UNAVAILABLE, and the server must answer normally
once the load drops.

This module starts its own server (about 20 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml

from serving.client import DecisionClient, UnavailableError

from .conftest import SYNTHETIC_POLICY, ServerProcess
from .faults import ACTIONS, LoadLedger, LoadRun, context_of, overload, percentile, process_memory

pytestmark = pytest.mark.integration

SEED = 20261205
REWARD_WAIT_SECONDS = 5.0
SAMPLE_SECONDS = 10.0
SAMPLES = 4
MAX_MEMORY_GROWTH = 0.05
# Share of the server's total RSS that it may grow by between the second
# and the last sample; the first sample still includes start-up growth.
OVERLOAD_IN_FLIGHT = 100
OVERLOAD_BATCH = 200
MAX_REJECTION_SECONDS = 3.0
# A rejected call has waited behind the admitted ones (up to 64 batches of
# about 25 ms), so a rejection can take over 1 s, still far below the deadline.


@pytest.fixture(scope="module")
def soak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("microbandit-soak"))
    config = yaml.safe_load(process.config_path.read_text())
    for policy in config["policies"]:
        if policy["name"] == SYNTHETIC_POLICY:
            policy["join"]["reward_wait_time_seconds"] = REWARD_WAIT_SECONDS
    process.config_path.write_text(yaml.safe_dump(config))
    process.start()
    try:
        yield process
    finally:
        if process.running:
            process.stop()


def _total_rss(server: ServerProcess) -> int:
    return sum(rss for _, rss, _ in process_memory(server).values())


def test_short_soak_flat_and_error_free(soak_server: ServerProcess) -> None:
    ledger = LoadLedger()
    samples = []
    with LoadRun([soak_server.address], SYNTHETIC_POLICY, ledger, threads=2, seed=SEED):
        for _ in range(SAMPLES):
            time.sleep(SAMPLE_SECONDS)
            samples.append(_total_rss(soak_server))

    with DecisionClient(soak_server.address, timeout=10.0) as client:
        info = client.get_policy(SYNTHETIC_POLICY)
    recent = sum(1 for t in ledger.decisions.values() if t >= time.time() - REWARD_WAIT_SECONDS - 2.0)
    growth = (samples[-1] - samples[1]) / samples[1]
    print(
        f"soak: {len(ledger.decisions)} decisions, {len(ledger.rewards)} rewards, "
        f"p50 {percentile([s for _, s in ledger.latencies], 50) * 1000:.1f} ms, "
        f"p99 {percentile([s for _, s in ledger.latencies], 99) * 1000:.1f} ms, "
        f"RSS {[round(s / 2**20) for s in samples]} MiB, {info.pending_decisions} pending"
    )
    assert dict(ledger.errors) == {}
    assert len(ledger.decisions) > 1000
    assert growth <= MAX_MEMORY_GROWTH, f"server RSS grew {growth:.1%} in {SAMPLE_SECONDS * (SAMPLES - 2):.0f} s"
    assert info.pending_decisions <= recent, "decisions stay pending after their reward window closed"


RECOVERY_SECONDS = 10.0


def test_overload_rejected_quickly_then_recovers(soak_server: ServerProcess) -> None:
    result = overload(
        soak_server.address, SYNTHETIC_POLICY, seconds=15.0, in_flight=OVERLOAD_IN_FLIGHT, batch_size=OVERLOAD_BATCH
    )
    rejected = result.codes["RESOURCE_EXHAUSTED"] + result.codes["UNAVAILABLE"]
    print(
        f"overload: {dict(result.codes)} {result.details}, rejections p99 {percentile(result.rejected_latencies, 99) * 1000:.1f} ms, "
        f"answers p99 {percentile(result.ok_latencies, 99) * 1000:.1f} ms"
    )
    assert set(result.codes) <= {"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}
    assert rejected > 0, f"{OVERLOAD_IN_FLIGHT} concurrent calls were never rejected"
    assert result.codes["OK"] > 0
    assert percentile(result.rejected_latencies, 99) <= MAX_REJECTION_SECONDS

    with DecisionClient(soak_server.address, timeout=2.0) as client:
        # The replica finishes the work it queued during the overload first,
        # so the first calls after it may still be shed for a moment.
        recovery_deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                client.choose(SYNTHETIC_POLICY, context_of("s2", 0), ACTIONS, consent=False)
                break
            except UnavailableError:
                assert time.monotonic() < recovery_deadline, f"still shedding load {RECOVERY_SECONDS} s after the overload"
                time.sleep(0.1)
        for hour in range(50):
            decision = client.choose(SYNTHETIC_POLICY, context_of("s2", hour % 24), ACTIONS, consent=False)
            assert decision.action_id in ACTIONS
