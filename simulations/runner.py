"""The in-process runner: every policy against the same seeded visitors.

For each seed the runner draws the scenario's :class:`VisitorStream` once and
plays it to every policy. Time is simulated: visitor ``t`` arrives at
``start_time + t * interval_s`` seconds, a reward report arrives ``delay``
seconds after its decision, and the clock injected into each decision loop
reads that simulated time. Reward windows, late rewards and default rewards
are therefore deterministic, and two runs with the same seed give identical
results.

Only clicks (non-zero rewards) are reported, as a web service reports them;
a visit without a click reaches the learner as the default reward when its
window closes.
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandit.settings import Aggregation, JoinSettings
from simulations.policies import Agent, PolicySpec, SimulatedClock, build_agent
from simulations.results import SimulationResult, round_frame
from simulations.scenario import Scenario, VisitorStream

__all__ = ["RunSettings", "run_simulation", "run_policy", "play", "event_id_for", "DEFAULT_START_TIME"]

logger = logging.getLogger(__name__)

# Event ids allow at most 128 characters from [A-Za-z0-9_.:-]; 64 leave room for "-sSEED-rROUND".
_EVENT_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

DEFAULT_START_TIME = 1_767_225_600.0
"""Simulated time of the first visitor: 2026-01-01T00:00:00Z, in seconds since the epoch."""


@dataclass(frozen=True)
class RunSettings:
    """How a simulation runs.

    Parameters
    ----------
    rounds : int
        Visitors per seed.
    seeds : tuple of int
        One run of every policy per seed.
    interval_s : float
        Simulated seconds between two visitors.
    reward_wait_time : float
        Seconds each VW policy waits for a reward before learning the default.
    default_reward : float
        Reward learned when none arrived in the window.
    aggregation : str
        How several rewards of one event combine (``earliest``, ``sum``, ...).
    start_time : float
        Simulated time of the first visitor, seconds since the epoch.
    event_prefix : str
        Prefix of every event id (``PREFIX-s0-r12``); empty for none. A run
        against a server that already saw the same seeds needs a new prefix,
        because the server returns the logged decision for a repeated event
        id.
    """

    rounds: int
    seeds: tuple[int, ...]
    interval_s: float = 1.0
    reward_wait_time: float = 600.0
    default_reward: float = 0.0
    aggregation: str = "earliest"
    start_time: float = DEFAULT_START_TIME
    event_prefix: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int):
            raise TypeError(f"rounds must be an int, got {type(self.rounds).__name__}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("seeds must contain at least one seed")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seeds must be integers >= 0, got {seed!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if not self.interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {self.interval_s!r}")
        self.join_settings()  # validates the wait time, default reward and aggregation
        if not isinstance(self.event_prefix, str):
            raise TypeError(f"event_prefix must be a str, got {type(self.event_prefix).__name__}")
        if self.event_prefix and not _EVENT_PREFIX.fullmatch(self.event_prefix):
            raise ValueError(
                f"event_prefix {self.event_prefix[:70]!r} is invalid: use 1 to 64 characters from [A-Za-z0-9_.:-]"
            )

    def join_settings(self) -> JoinSettings:
        """Return the reward-join settings every VW policy of the run uses."""
        return JoinSettings(
            reward_wait_time=self.reward_wait_time,
            default_reward=self.default_reward,
            aggregation=Aggregation(self.aggregation),
        )

    def round_time(self, round_index: int) -> float:
        """Return the simulated arrival time of visitor ``round_index``."""
        return self.start_time + round_index * self.interval_s


def event_id_for(seed: int, round_index: int, prefix: str = "") -> str:
    """Return the event id of a round; the same for every policy of a seed."""
    return f"{prefix}-s{seed}-r{round_index}" if prefix else f"s{seed}-r{round_index}"


def run_policy(
    scenario: Scenario,
    spec: PolicySpec,
    stream: VisitorStream,
    settings: RunSettings,
    *,
    log_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Play one policy on one seed's stream and return its per-round arrays.

    Parameters
    ----------
    scenario, spec, stream, settings
        What to play, and how.
    log_dir : path, optional
        Directory of the policy's event log for this seed.
    progress : callable, optional
        Called with the number of rounds done since the previous call.

    Returns
    -------
    dict of str to numpy.ndarray
        ``action``, ``probability``, ``model_version``, ``reward`` (realized),
        ``reported`` (whether a reward report was sent) and ``seconds`` (wall
        time of the run, one value).
    """
    clock = SimulatedClock(settings.start_time)
    agent = build_agent(
        spec, scenario, stream, seed=stream.seed, clock=clock, join=settings.join_settings(), log_dir=log_dir
    )
    return play(agent, clock, stream, settings, progress=progress)


def play(
    agent: Agent,
    clock: SimulatedClock,
    stream: VisitorStream,
    settings: RunSettings,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Play one seed's stream to an agent on the simulated clock, then close the agent.

    ``clock`` is the clock the agent reads; this function sets it to each
    visitor's arrival time and to each reward report's arrival time. Returns
    the arrays described in :func:`run_policy`.
    """
    rounds = stream.rounds
    action = np.empty(rounds, dtype=np.int32)
    probability = np.empty(rounds)
    version = np.empty(rounds, dtype=np.int64)
    reward = np.empty(rounds)
    reported = np.zeros(rounds, dtype=bool)
    pending: list[tuple[float, int, str, float]] = []
    chunk = max(1, rounds // 50)
    started = time.perf_counter()
    try:
        for t in range(rounds):
            now = settings.round_time(t)
            while pending and pending[0][0] <= now:
                arrival, _, event_id, value = heapq.heappop(pending)
                clock.now = arrival
                agent.reward(event_id, value)
            clock.now = now
            agent.advance(now)

            event_id = event_id_for(stream.seed, t, settings.event_prefix)
            choice = agent.choose(t, event_id)
            action[t] = choice.action_index
            probability[t] = choice.probability
            version[t] = choice.model_version
            value = stream.realized_reward(t, choice.action_index)
            reward[t] = value
            if value != 0.0 and not stream.lost[t]:
                heapq.heappush(pending, (now + float(stream.delays[t]), t, event_id, value))
                reported[t] = True
            if progress is not None and (t + 1) % chunk == 0:
                progress(chunk)

        # Deliver what is still in flight, then let every window close.
        while pending:
            arrival, _, event_id, value = heapq.heappop(pending)
            clock.now = arrival
            agent.reward(event_id, value)
    finally:
        agent.close()
    if progress is not None and rounds % chunk:
        progress(rounds % chunk)
    seconds = time.perf_counter() - started
    return {
        "action": action,
        "probability": probability,
        "model_version": version,
        "reward": reward,
        "reported": reported,
        "seconds": np.array([seconds]),
    }


def _log_dir(root: Path | None, policy: str, seed: int) -> Path | None:
    return None if root is None else root / policy / f"seed-{seed}"


# Work of the current parallel run, inherited by forked worker processes.
# Scenarios hold read-only mappings that cannot be pickled, so workers
# receive only indices into this tuple.
_PARALLEL_WORK: tuple[Scenario, Sequence[PolicySpec], RunSettings, Path | None] | None = None


def _run_job(policy_index: int, seed: int) -> tuple[str, int, dict[str, np.ndarray]]:
    assert _PARALLEL_WORK is not None, "worker started without parallel work"
    scenario, policies, settings, log_root = _PARALLEL_WORK
    spec = policies[policy_index]
    stream = scenario.stream(seed, settings.rounds)
    arrays = run_policy(scenario, spec, stream, settings, log_dir=_log_dir(log_root, spec.name, seed))
    return spec.name, seed, arrays


def run_simulation(
    scenario: Scenario,
    policies: Sequence[PolicySpec],
    settings: RunSettings,
    *,
    log_root: str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run every policy on every seed and collect the per-round results.

    Parameters
    ----------
    scenario : Scenario
        The environment.
    policies : sequence of PolicySpec
        The policies to compare; names must be distinct.
    settings : RunSettings
        Rounds, seeds, simulated time and reward-join settings.
    log_root : path, optional
        When given, each policy writes its event log to
        ``log_root/POLICY/seed-SEED/events``.
    workers : int
        Processes to run (policy, seed) jobs in; 1 runs everything in this
        process. Results do not depend on it.
    progress : callable, optional
        Called with numbers of rounds completed, for a progress bar.

    Returns
    -------
    SimulationResult
        Per-round results of every policy and seed.
    """
    if not policies:
        raise ValueError("policies must contain at least one policy")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be distinct, got {names}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    root = Path(log_root) if log_root is not None else None

    frames = []
    timings: dict[tuple[str, int], float] = {}
    if workers == 1:
        for seed in settings.seeds:
            stream = scenario.stream(seed, settings.rounds)
            for spec in policies:
                logger.debug("running policy %s on seed %d", spec.name, seed)
                arrays = run_policy(
                    scenario, spec, stream, settings, log_dir=_log_dir(root, spec.name, seed), progress=progress
                )
                timings[(spec.name, seed)] = float(arrays["seconds"][0])
                frames.append(round_frame(scenario.name, spec.name, stream, arrays, settings))
    else:
        global _PARALLEL_WORK
        streams = {seed: scenario.stream(seed, settings.rounds) for seed in settings.seeds}
        _PARALLEL_WORK = (scenario, tuple(policies), settings, root)
        results = {}
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [
                    pool.submit(_run_job, index, seed)
                    for seed in settings.seeds
                    for index in range(len(policies))
                ]
                for future in as_completed(futures):
                    name, seed, arrays = future.result()
                    results[(name, seed)] = arrays
                    if progress is not None:
                        progress(settings.rounds)
        finally:
            _PARALLEL_WORK = None
        for seed in settings.seeds:
            for spec in policies:
                arrays = results[(spec.name, seed)]
                timings[(spec.name, seed)] = float(arrays["seconds"][0])
                frames.append(round_frame(scenario.name, spec.name, streams[seed], arrays, settings))
    return SimulationResult.from_frames(
        frames,
        scenario=scenario.describe(),
        policies=[p.to_dict() for p in policies],
        settings=settings,
        timings=timings,
        runner="in-process",
    )
