"""Load generation, SIGKILL and event-log checks shared by the crash and soak tests and scripts.

:class:`LoadRun` drives a running server from client threads on loopback
with Choose, ChooseBatch and Reward calls and records what the server
acknowledged. :func:`kill_server` sends SIGKILL to every process of the
server's session (the ``microbandit serve`` process and the Ray processes it
started, which stay in its session). :func:`check_event_log` then compares
the event log on disk with the acknowledgements, and
:func:`replayed_model_pmf` rebuilds the model a restarted learner must have:
the last checkpoint plus the joined events logged after it.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bandit.eventlog import list_segments, read_records
from bandit.events import DecisionRecord, JoinedEvent, RewardRecord
from bandit.features import Action
from bandit.learner import CHECKPOINT_NAME
from bandit.policy import Policy
from bandit.settings import PolicySettings
from serving.client import ChooseArgs, ClientError, DecisionClient

from .conftest import ServerProcess

__all__ = [
    "ACTIONS",
    "LoadLedger",
    "LoadRun",
    "LogCheck",
    "check_event_log",
    "context_of",
    "kill_server",
    "overload",
    "percentile",
    "process_memory",
    "replayed_model_pmf",
]

ACTIONS = [f"a{i}" for i in range(10)]
SEGMENTS = ("s0", "s1", "s2")
BEST_ACTION = {"s0": "a7", "s1": "a2", "s2": "a5"}
PMF_TOLERANCE = 1e-6


def context_of(segment: str, hour: int) -> dict[str, dict[str, object]]:
    """Return the context the load sends for a user segment and an hour."""
    return {"user": {"segment": segment}, "time": {"hour": float(hour)}}


@dataclass
class LoadLedger:
    """What the server acknowledged to the load threads, with wall-clock times in seconds."""

    decisions: dict[str, float] = field(default_factory=dict)
    """Event id of each answered decision -> time its reply arrived."""
    rewards: dict[str, str] = field(default_factory=dict)
    """Event id -> reward id of each reward the server answered OK."""
    reward_statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """gRPC status name (or exception type) -> count of failed calls."""
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(time the call ended, seconds it took) of every successful call."""
    reward_latencies: list[tuple[float, float]] = field(default_factory=list)
    """The same, of successful Reward calls only."""
    invalid_pmfs: int = 0
    repeated_event_ids: int = 0

    def latencies_since(self, start: float, rewards_only: bool = False) -> list[float]:
        """Return the latencies of calls (or of Reward calls) that ended at or after ``start``."""
        calls = self.reward_latencies if rewards_only else self.latencies
        return [seconds for ended, seconds in calls if ended >= start]


def _pmf_is_valid(ranking: Sequence[tuple[str, float]], action_id: str, probability: float) -> bool:
    probabilities = [p for _, p in ranking]
    return (
        sorted(a for a, _ in ranking) == sorted(ACTIONS)
        and all(0.0 <= p <= 1.0 for p in probabilities)
        and abs(math.fsum(probabilities) - 1.0) <= PMF_TOLERANCE
        and dict(ranking).get(action_id) == probability
    )


class LoadRun:
    """Client threads sending a steady Choose/ChooseBatch/Reward load to one server.

    Parameters
    ----------
    addresses : sequence of str
        gRPC targets of the server.
    policy : str
        Policy to load.
    ledger : LoadLedger
        Where acknowledgements are recorded; shared across runs.
    threads : int
        Client threads, each with one call in flight.
    seed : int
        Seed of the threads' generators (thread ``i`` uses ``seed + i``).
    reward_share : float
        Share of decisions that get a reward.
    batch_every : int
        Every ``batch_every``-th call of a thread is a ChooseBatch of
        ``batch_size`` requests; 0 sends only Choose.
    timeout : float
        Seconds per call.
    pause : float
        Seconds a thread waits after each decision and reward; 0 sends as fast
        as the server answers.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        policy: str,
        ledger: LoadLedger,
        *,
        threads: int = 2,
        seed: int = 0,
        reward_share: float = 0.7,
        batch_every: int = 10,
        batch_size: int = 5,
        timeout: float = 5.0,
        pause: float = 0.0,
    ) -> None:
        self.addresses = list(addresses)
        self.policy = policy
        self.ledger = ledger
        self.reward_share = reward_share
        self.batch_every = batch_every
        self.batch_size = batch_size
        self.timeout = timeout
        self.pause = pause
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed + index,), name=f"load-{index}", daemon=True)
            for index in range(threads)
        ]

    def __enter__(self) -> LoadRun:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the threads and wait for their last calls to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5.0)

    def _record_error(self, error: Exception) -> None:
        name = error.code.name if isinstance(error, ClientError) else type(error).__name__
        with self._lock:
            self.ledger.errors[name] += 1

    def _decide(self, client: DecisionClient, generator: np.random.Generator, count: int) -> list[tuple[str, str, bool]]:
        segments = [SEGMENTS[int(generator.integers(len(SEGMENTS)))] for _ in range(count)]
        hours = [int(generator.integers(24)) for _ in range(count)]
        started = time.monotonic()
        if count == 1:
            decisions = [client.choose(self.policy, context_of(segments[0], hours[0]), ACTIONS)]
        else:
            requests = [ChooseArgs(self.policy, context_of(s, h), ACTIONS) for s, h in zip(segments, hours)]
            decisions = client.choose_batch(requests)
        now = time.time()
        elapsed = time.monotonic() - started
        results = []
        with self._lock:
            self.ledger.latencies.append((now, elapsed))
            for decision, segment in zip(decisions, segments):
                if decision.event_id in self.ledger.decisions:
                    self.ledger.repeated_event_ids += 1
                self.ledger.decisions[decision.event_id] = now
                if not _pmf_is_valid(decision.ranking, decision.action_id, decision.probability):
                    self.ledger.invalid_pmfs += 1
                results.append((decision.event_id, decision.action_id, decision.action_id == BEST_ACTION[segment]))
        return results

    def _reward(self, client: DecisionClient, event_id: str, value: float) -> None:
        reward_id = f"r-{event_id}"
        started = time.monotonic()
        status = client.reward(event_id, value, policy=self.policy, reward_id=reward_id)
        elapsed = time.monotonic() - started
        with self._lock:
            self.ledger.latencies.append((time.time(), elapsed))
            self.ledger.reward_latencies.append((time.time(), elapsed))
            self.ledger.rewards[event_id] = reward_id
            self.ledger.reward_statuses[status] += 1

    def _run(self, seed: int) -> None:
        generator = np.random.default_rng(seed)
        calls = 0
        with DecisionClient(self.addresses, timeout=self.timeout) as client:
            while not self._stop.is_set():
                calls += 1
                count = self.batch_size if self.batch_every and calls % self.batch_every == 0 else 1
                try:
                    decided = self._decide(client, generator, count)
                except Exception as error:  # counted; the load goes on
                    self._record_error(error)
                    self._stop.wait(0.05)
                    continue
                for event_id, _, best in decided:
                    if generator.random() >= self.reward_share or self._stop.is_set():
                        continue
                    try:
                        self._reward(client, event_id, 1.0 if best else 0.0)
                    except Exception as error:
                        self._record_error(error)
                if self.pause:
                    self._stop.wait(self.pause)


def kill_server(server: ServerProcess, timeout: float = 30.0) -> tuple[float, int]:
    """SIGKILL every process of the server's session; return (kill time, processes killed).

    Only processes whose session id is the server's own pid are signalled:
    the server was started with ``start_new_session=True``, and the Ray
    processes it starts stay in its session.
    """
    pids = server.pids()
    killed_at = time.time()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert server.process is not None
    server.process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while server.pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    remaining = server.pids()
    if remaining:
        raise RuntimeError(f"processes {remaining} of the killed server's session are still alive")
    return killed_at, len(pids)


@dataclass
class LogCheck:
    """The event log compared with what the server acknowledged."""

    segments: int
    corrupt_segments: list[str]
    decisions_logged: int
    rewards_logged: int
    missing_rewards: list[str]
    rewarded_decisions_missing: list[str]
    invalid_pmfs: list[str]
    duplicate_decision_ids: list[str]
    learnable_joined: int
    unlogged_decisions: dict[str, float]
    """Event id -> reply time of answered decisions absent from the log."""


def _decision_pmf_valid(record: DecisionRecord) -> bool:
    pmf = record.pmf
    return (
        len(pmf) == len(record.action_ids) > 0
        and all(0.0 <= p <= 1.0 for p in pmf)
        and abs(math.fsum(pmf) - 1.0) <= PMF_TOLERANCE
        and record.chosen_action in record.action_ids
        and record.pmf_dict()[record.chosen_action] == record.probability
        and record.probability > 0.0
    )


def check_event_log(events_dir: Path, ledger: LoadLedger) -> LogCheck:
    """Read every segment on its own and compare the log with the ledger."""
    segments = list_segments(events_dir)
    corrupt = []
    for segment in segments:
        try:
            pq.read_table(segment)
        except Exception:  # any failure to read a segment is the finding
            corrupt.append(segment.name)
    records = read_records(events_dir) if not corrupt else []

    decisions: dict[str, DecisionRecord] = {}
    duplicates = []
    rewards: set[tuple[str, str | None]] = set()
    learnable = 0
    for record in records:
        if isinstance(record, DecisionRecord):
            if record.event_id in decisions:
                duplicates.append(record.event_id)
            decisions[record.event_id] = record
        elif isinstance(record, RewardRecord):
            rewards.add((record.event_id, record.reward_id))
        elif isinstance(record, JoinedEvent) and record.learnable:
            learnable += 1
    return LogCheck(
        segments=len(segments),
        corrupt_segments=corrupt,
        decisions_logged=len(decisions),
        rewards_logged=len(rewards),
        missing_rewards=sorted(e for e, r in ledger.rewards.items() if (e, r) not in rewards),
        rewarded_decisions_missing=sorted(e for e in ledger.rewards if e not in decisions),
        invalid_pmfs=sorted(e for e, d in decisions.items() if not _decision_pmf_valid(d)),
        duplicate_decision_ids=duplicates,
        learnable_joined=learnable,
        unlogged_decisions={e: t for e, t in ledger.decisions.items() if e not in decisions},
    )


def replayed_model_pmf(
    policy_dir: Path, settings: PolicySettings, context: dict[str, dict[str, object]]
) -> tuple[dict[str, float], int, int]:
    """Rebuild the restored model from disk and return (its PMF for ``context``, checkpointed, replayed).

    The model is the last checkpoint (or a fresh one) plus every learnable
    joined event logged after the checkpoint's examples, in log order: what
    a restarting learner restores.
    """
    checkpoint = policy_dir / CHECKPOINT_NAME
    policy = Policy.load(checkpoint, settings) if checkpoint.exists() else Policy(settings)
    try:
        checkpointed = policy.examples_learned
        seen = 0
        replayed = 0
        for record in read_records(policy_dir / "events", kinds=["joined"]):
            assert isinstance(record, JoinedEvent)
            if not record.learnable:
                continue
            seen += 1
            if seen > checkpointed:
                policy.learn(record)
                replayed += 1
        pmf = policy.pmf(context, [Action(a, {}) for a in ACTIONS])
    finally:
        policy.close()
    return pmf, checkpointed, replayed


def process_memory(server: ServerProcess) -> dict[int, tuple[str, int, int]]:
    """Return pid -> (process name, RSS bytes, PSS bytes) of every process of the server's session."""
    result = {}
    for pid in server.pids():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            rss = pss = 0
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
        except OSError:  # the process ended meanwhile
            continue
        result[pid] = (name, rss, pss)
    return result


@dataclass
class OverloadResult:
    """Outcome of :func:`overload`: status counts and latencies in seconds."""

    codes: Counter[str]
    ok_latencies: list[float]
    rejected_latencies: list[float]
    details: dict[str, str] = field(default_factory=dict)
    """Status name -> message of the first call that failed with it."""


def overload(
    address: str, policy: str, seconds: float, in_flight: int, batch_size: int = 1, timeout: float = 10.0
) -> OverloadResult:
    """Keep ``in_flight`` calls open against one address for ``seconds``, as fast as they return.

    Each call is a Choose, or a ChooseBatch of ``batch_size`` requests when
    it is over 1.
    """
    import asyncio

    import grpc

    from protos.microbandit.v1 import decision_service_pb2 as pb
    from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc

    request = pb.ChooseRequest(
        policy=policy,
        context={"user": pb.Namespace(features={"segment": pb.FeatureValue(string_value="s0")})},
        actions=[pb.Action(id=a) for a in ACTIONS],
        consent=pb.CONSENT_DENIED,  # answered but not logged: the overload must not fill the join
    )
    batch = pb.ChooseBatchRequest(requests=[request] * batch_size)
    result = OverloadResult(Counter(), [], [])

    async def worker(stub: pb_grpc.DecisionServiceStub, deadline: float) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                if batch_size > 1:
                    await stub.ChooseBatch(batch, timeout=timeout)
                else:
                    await stub.Choose(request, timeout=timeout)
            except grpc.aio.AioRpcError as error:
                result.codes[error.code().name] += 1
                result.details.setdefault(error.code().name, error.details() or "")
                result.rejected_latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.01)
                continue
            result.codes["OK"] += 1
            result.ok_latencies.append(time.monotonic() - started)

    async def run() -> None:
        # Several connections, because one HTTP/2 connection may carry only
        # about 100 concurrent streams.
        channels = [grpc.aio.insecure_channel(address) for _ in range(math.ceil(in_flight / 50))]
        stubs = [pb_grpc.DecisionServiceStub(channel) for channel in channels]
        deadline = time.monotonic() + seconds
        try:
            await asyncio.gather(*(worker(stubs[i % len(stubs)], deadline) for i in range(in_flight)))
        finally:
            for channel in channels:
                await channel.close()

    asyncio.run(run())
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q`` percentile (0-100) of ``values``, NaN when empty."""
    return float(np.percentile(values, q)) if values else math.nan
