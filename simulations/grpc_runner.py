"""The gRPC runner: the same seeded visitors, played through a running ``microbandit serve``.

A served policy is named by its name in the server's configuration (for
example ``micro_adjustments``); its exploration, VW arguments, seed and
reward join come from that configuration, read with ``GetPolicy``. The
reference policies (``uniform``, ``baseline``, ``oracle``) learn nothing, so
they are played in-process, exactly as the in-process runner plays them.

Simulated time and the server's clock
-------------------------------------
The visitor stream is the one the in-process runner draws: visitor ``t`` of
a seed arrives at simulated time ``start + t * interval_s``, and a click is
reported ``delay`` simulated seconds after its decision. The runner sends
each ``Choose`` and each ``Reward`` in that simulated order, as fast as the
server responds (or at ``rate`` visitors per wall-clock second), so simulated
time runs much faster than the server's clock: at 130 visitors per second
(measured with the example configuration on 2 cores) and 10 simulated
seconds per visitor, a simulated hour (360 visitors) takes under 3 s.

The server closes reward windows on its own clock, ``reward_wait_time``
wall-clock seconds after each decision (10 minutes in the example
configuration), which is longer than a whole short run. So the runner
closes each window at its simulated end instead: ``reward_wait_time``
simulated seconds after a decision that received no report, it sends
``Reward`` with the policy's default reward. With ``earliest`` aggregation
the first reward closes the event, so the server learns what the in-process
learner learns, in the same simulated order. A report that arrives after
the simulated window is sent anyway and is stored as late, as in-process.
With other aggregations the first reward does not close the event; the
runner then sends no default rewards and warns, and the server learns only
when its wall-clock windows close.

What still differs from the in-process run
------------------------------------------
- Model update latency. In-process, a decision uses a model that has
  learned every event closed before it. The server's learner publishes a
  new model every ``model_update_interval_seconds`` and each decider fetches
  it on its own timer with the same period, so a decision uses a model up to
  about two intervals old: at ``R`` visitors per second, about ``2 R``
  rounds of learning are missing. ``sync_every`` makes the runner wait for
  the served model to catch up every that many rounds, which removes most of
  that latency at the cost of wall time.
- Reward join timing. Decisions reach the learner in batches; a reward sent
  before its decision arrived is held (status ``pending_decision``) and
  joined when the decision arrives. The join result is the same; the
  statuses are counted in the run's metadata.
- One model across seeds. The server keeps learning from run to run, so
  seeds run one after the other and seed ``k`` starts with the model of
  seeds ``0..k-1``. The in-process replica of a served policy
  (``compare_in_process``) carries its model across seeds the same way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.errors import MicrobanditError
from bandit.events import LearningMode
from bandit.loop import DecisionLoop
from bandit.settings import Aggregation, PolicySettings
from serving.client import DecisionClient, NotFoundError
from serving.config import PolicyConfig
from simulations.policies import Agent, Choice, PolicySpec, SimulatedClock
from simulations.results import SimulationResult, round_frame
from simulations.runner import RunSettings, play, run_policy
from simulations.scenario import Scenario, VisitorStream
from simulations.stats import mean_interval

__all__ = [
    "ServerRunSettings",
    "ServedPolicy",
    "ServerSimulationError",
    "fetch_served_policies",
    "run_server_simulation",
    "compare_runners",
    "comparison_to_dict",
    "IN_PROCESS_SUFFIX",
]

logger = logging.getLogger(__name__)

IN_PROCESS_SUFFIX = ".in-process"
"""Suffix of the label of a served policy's in-process replica in results."""

_POLL_SECONDS = 0.05
_LEARNER_TICK_SECONDS = 0.2
"""Upper bound of the learner's timer period (0.1 s in serving.app) plus scheduling slack."""
# The decider fetches a published model on a timer of one model update
# interval; this margin covers the fetch and the model load.
_DECIDER_MARGIN_SECONDS = 0.3


class ServerSimulationError(MicrobanditError):
    """The server did something the gRPC runner cannot simulate around."""


@dataclass(frozen=True)
class ServerRunSettings:
    """Connection, pacing and model waits of the gRPC runner.

    Parameters
    ----------
    address : str
        ``host:port`` of a decider replica or of the Ray Serve proxy.
    timeout : float
        Seconds per gRPC call.
    sync_every : int
        Rounds between two waits for the served model to learn every closed
        event and reach the deciders; 0 waits only at the end of each seed.
    rate : float or None
        Visitors per wall-clock second; ``None`` sends as fast as the server
        responds.
    sync_timeout : float
        Seconds one wait for the served model may take before the runner
        warns and goes on.
    token : str or None
        Bearer token of a server configured with ``server.auth_token_env``.
    """

    address: str
    timeout: float = 10.0
    sync_every: int = 0
    rate: float | None = None
    sync_timeout: float = 60.0
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or ":" not in self.address:
            raise ValueError(f"address must be HOST:PORT, got {self.address!r}")
        if isinstance(self.sync_every, bool) or not isinstance(self.sync_every, int) or self.sync_every < 0:
            raise ValueError(f"sync_every must be an integer >= 0 rounds, got {self.sync_every!r}")
        for name in ("timeout", "sync_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of visitors per second, got {self.rate!r}")


@dataclass(frozen=True)
class ServedPolicy:
    """A policy of the running server, as ``GetPolicy`` returned it before the run.

    Attributes
    ----------
    config : PolicyConfig
        The policy's configuration section.
    model_version : int
        Published model version before the run.
    examples_learned : int
        Examples the learner had learned before the run.
    """

    config: PolicyConfig
    model_version: int
    examples_learned: int

    @property
    def name(self) -> str:
        """The served policy name."""
        return self.config.name

    @property
    def settings(self) -> PolicySettings:
        """The policy's settings, as the server builds them."""
        return self.config.build()

    @property
    def learns(self) -> bool:
        """Whether the learner learns from joined events (online or apprentice mode)."""
        return self.config.learning_mode is not LearningMode.LOGGING_ONLY

    @property
    def closes_on_first_reward(self) -> bool:
        """Whether the first reward closes an event (``earliest`` aggregation)."""
        return self.config.join.aggregation is Aggregation.EARLIEST

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description for the run's metadata."""
        return {
            "name": self.name,
            "kind": "served",
            "settings": json.loads(self.config.settings_json()),
            "model_version_before": self.model_version,
            "examples_learned_before": self.examples_learned,
        }


def fetch_served_policies(client: DecisionClient, names: Sequence[str]) -> list[ServedPolicy]:
    """Read the configuration and learning state of the named served policies.

    Raises
    ------
    ValueError
        If a name is not served; the message lists the served names.
    """
    result = []
    for name in names:
        try:
            info = client.get_policy(name)
        except NotFoundError:
            served = sorted(p.name for p in client.list_policies())
            raise ValueError(f"policy {name!r} is not served by the server; it serves {served}") from None
        config = PolicyConfig.model_validate_json(info.settings_json)
        result.append(ServedPolicy(config, info.model_version, info.examples_learned))
    return result


@dataclass
class _ServedProgress:
    """Counts of the runner's calls to one served policy, across seeds."""

    closed_events: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    default_rewards_sent: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    wait_timeouts: int = 0
    synced_examples: int = 0


class _ServerAgent(Agent):
    """A served policy playing one seed over gRPC, closing reward windows on the simulated clock."""

    def __init__(
        self,
        client: DecisionClient,
        served: ServedPolicy,
        stream: VisitorStream,
        clock: SimulatedClock,
        server: ServerRunSettings,
        sent: _ServedProgress,
    ) -> None:
        self.client = client
        self.served = served
        self.stream = stream
        self.clock = clock
        self.server = server
        self.sent = sent
        self.wait_time = served.config.join.reward_wait_time_seconds
        self.default_reward = served.config.join.default_reward
        self.close_windows = served.closes_on_first_reward
        self._windows: deque[tuple[float, str]] = deque()
        self._open: set[str] = set()
        self._choices = 0
        self._started = time.monotonic()

    def choose(self, round_index: int, event_id: str) -> Choice:
        if self.server.rate is not None:
            delay = self._started + self._choices / self.server.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        # Simulated visitors consent, so a policy with require_consent logs and learns their decisions.
        decision = self.client.choose(
            self.served.name, self.stream.contexts[round_index], self.stream.actions, event_id=event_id, consent=True
        )
        if decision.replayed:
            raise ServerSimulationError(
                f"the server already decided event {event_id!r} of policy {self.served.name!r}, so it returned the "
                "logged decision; run again with another event prefix (--run-id)"
            )
        self._choices += 1
        self._windows.append((self.clock.now + self.wait_time, event_id))
        self._open.add(event_id)
        if self.server.sync_every and self._choices % self.server.sync_every == 0:
            self.sync()
        return Choice(self.stream.action_index[decision.action_id], decision.probability, decision.model_version)

    def reward(self, event_id: str, value: float) -> None:
        # Windows that ended strictly before this report close first, so a
        # report after its simulated window is late, as in-process.
        self._close_windows(self.clock.now, inclusive=False)
        status = self.client.reward(event_id, value, policy=self.served.name)
        self.sent.statuses[status] += 1
        if event_id in self._open and status in ("accepted", "pending_decision") and self.close_windows:
            self._open.discard(event_id)
            self.sent.closed_events += 1

    def advance(self, now: float) -> None:
        self._close_windows(now, inclusive=True)

    def _close_windows(self, now: float, *, inclusive: bool) -> None:
        if not self.close_windows:
            return
        while self._windows and (self._windows[0][0] <= now if inclusive else self._windows[0][0] < now):
            _, event_id = self._windows.popleft()
            if event_id not in self._open:
                continue
            self._open.discard(event_id)
            status = self.client.reward(event_id, self.default_reward, policy=self.served.name)
            self.sent.statuses[f"default_{status}"] += 1
            self.sent.default_rewards_sent += 1
            self.sent.closed_events += 1

    def close(self) -> None:
        self._close_windows(math.inf, inclusive=True)
        self.sync()

    def sync(self) -> None:
        """Wait until the server learned every closed event and the deciders can have the new model.

        The learner publishes a model at most ``model_update_interval``
        seconds (plus one timer tick) after it learned something. Each
        decider fetches it on a timer of the same period. So once every
        closed event is learned, the runner waits for the next publication
        (or that bound) and then one more interval.
        """
        expected = self.served.examples_learned + self.sent.closed_events
        if not self.served.learns or expected == self.sent.synced_examples:
            return
        started = time.monotonic()
        self.sent.waits += 1
        interval = self.served.config.model_update_interval_seconds
        deadline = started + self.server.sync_timeout
        info = self.client.get_policy(self.served.name)
        while info.examples_learned < expected:
            if time.monotonic() > deadline:
                self.sent.wait_timeouts += 1
                logger.warning(
                    "policy %r learned %d of %d examples within %.0f s; continuing without the newest model",
                    self.served.name,
                    info.examples_learned,
                    expected,
                    self.server.sync_timeout,
                )
                return
            time.sleep(_POLL_SECONDS)
            info = self.client.get_policy(self.served.name)
        learned_by = time.time()
        published_by = learned_by + interval + _LEARNER_TICK_SECONDS
        while info.last_model_update < learned_by and time.time() < published_by:
            time.sleep(_POLL_SECONDS)
            info = self.client.get_policy(self.served.name)
        time.sleep(interval + _DECIDER_MARGIN_SECONDS)
        self.sent.synced_examples = expected
        self.sent.wait_seconds += time.monotonic() - started


class _ReplicaAgent(Agent):
    """The in-process replica of a served policy: one loop carried across seeds."""

    def __init__(self, loop: DecisionLoop, stream: VisitorStream, clock: SimulatedClock) -> None:
        self.loop = loop
        self.stream = stream
        self.clock = clock

    def choose(self, round_index: int, event_id: str) -> Choice:
        decision = self.loop.choose(self.stream.contexts[round_index], self.stream.actions, event_id=event_id)
        return Choice(self.stream.action_index[decision.chosen_action], decision.probability, decision.model_version)

    def reward(self, event_id: str, value: float) -> None:
        self.loop.reward(event_id, value)

    def advance(self, now: float) -> None:
        self.loop.advance(now)

    def close(self) -> None:
        # Close this seed's windows but keep the model for the next seed.
        self.loop.advance(self.clock.now + self.loop.settings.join.reward_wait_time + 1.0)


def _seed_settings(settings: RunSettings, seed_position: int, wait_time: float) -> RunSettings:
    """Return the settings of the ``seed_position``-th seed, whose simulated time starts after the previous seed's windows."""
    span = settings.rounds * settings.interval_s + wait_time + settings.interval_s
    return replace(settings, start_time=settings.start_time + seed_position * span)


def run_server_simulation(
    scenario: Scenario,
    served_names: Sequence[str],
    references: Sequence[PolicySpec],
    settings: RunSettings,
    server: ServerRunSettings,
    *,
    compare_in_process: bool = False,
    log_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    client: DecisionClient | None = None,
) -> SimulationResult:
    """Play served policies over gRPC and reference policies in-process on the same seeded visitors.

    Parameters
    ----------
    scenario : Scenario
        The environment; its actions and context namespaces must be what the
        served policies accept.
    served_names : sequence of str
        Names of policies in the server's configuration.
    references : sequence of PolicySpec
        Reference policies (uniform, baseline, oracle) played in-process.
    settings : RunSettings
        Rounds, seeds and simulated time. The reward join of a served policy
        (and of its replica) comes from the server's configuration; the join
        settings here apply to the reference policies' event logs.
    server : ServerRunSettings
        Address, pacing and waits.
    compare_in_process : bool
        Also play each served policy's configuration in-process (label
        ``NAME.in-process``), with the same event ids and the model carried
        across seeds, for :func:`compare_runners`.
    log_root : path, optional
        Event logs of the reference policies and replicas, as in
        :func:`~simulations.runner.run_simulation`. The served policies log
        in the server's data directory.
    progress : callable, optional
        Called with numbers of rounds completed.
    client : DecisionClient, optional
        A connected client (the caller waits until it is ready); one is
        opened on ``server.address`` otherwise.

    Returns
    -------
    SimulationResult
        Per-round results; the metadata holds each served policy's
        configuration, reward statuses, waits and model versions.

    Raises
    ------
    ValueError
        If a served name is unknown to the server or repeated, or nothing is
        to be played.
    ServerSimulationError
        If the server returns a stored decision for an event id of this run.
    serving.client.ClientError
        If a call fails.
    """
    if not served_names and not references:
        raise ValueError("name at least one served or reference policy")
    labels = [*served_names, *(spec.name for spec in references)]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy names must be distinct, got {labels}")
    for spec in references:
        if not spec.is_reference:
            raise ValueError(
                f"policy {spec.name!r} is a VW preset, which runs in-process only; with a server, name the "
                "served policies instead"
            )
    root = Path(log_root) if log_root is not None else None

    own_client = client is None
    if client is None:
        client = DecisionClient(server.address, timeout=server.timeout, token=server.token)
    try:
        if own_client:
            client.wait_ready(timeout=server.timeout)
        served = fetch_served_policies(client, served_names)
        for policy in served:
            if not policy.closes_on_first_reward:
                logger.warning(
                    "policy %r aggregates rewards with %r, so a reward does not close its event; the runner sends no "
                    "default rewards and the server learns only when its %.0f s wall-clock windows close",
                    policy.name,
                    policy.config.join.aggregation.value,
                    policy.config.join.reward_wait_time_seconds,
                )
            if policy.examples_learned:
                logger.warning(
                    "policy %r has already learned %d examples (model version %d); an in-process replica starts "
                    "from an untrained model",
                    policy.name,
                    policy.examples_learned,
                    policy.model_version,
                )
        return _play_all(scenario, served, references, settings, server, compare_in_process, root, progress, client)
    finally:
        if own_client:
            client.close()


def _play_all(
    scenario: Scenario,
    served: Sequence[ServedPolicy],
    references: Sequence[PolicySpec],
    settings: RunSettings,
    server: ServerRunSettings,
    compare_in_process: bool,
    root: Path | None,
    progress: Callable[[int], None] | None,
    client: DecisionClient,
) -> SimulationResult:
    wait_time = max([settings.reward_wait_time, *(p.config.join.reward_wait_time_seconds for p in served)])
    sent = {p.name: _ServedProgress(synced_examples=p.examples_learned) for p in served}
    replicas: dict[str, tuple[DecisionLoop, SimulatedClock]] = {}
    if compare_in_process:
        for policy in served:
            clock = SimulatedClock(settings.start_time)
            log_dir = None if root is None else root / f"{policy.name}{IN_PROCESS_SUFFIX}" / "all-seeds"
            replicas[policy.name] = (DecisionLoop(policy.settings, log_dir, clock=clock, restore=False), clock)

    frames = []
    timings: dict[tuple[str, int], float] = {}
    versions: dict[str, list[int]] = {p.name: [] for p in served}
    try:
        for position, seed in enumerate(settings.seeds):
            seed_settings = _seed_settings(settings, position, wait_time)
            stream = scenario.stream(seed, settings.rounds)
            for policy in served:
                logger.debug("playing served policy %s on seed %d over gRPC", policy.name, seed)
                clock = SimulatedClock(seed_settings.start_time)
                agent = _ServerAgent(client, policy, stream, clock, server, sent[policy.name])
                arrays = play(agent, clock, stream, seed_settings, progress=progress)
                versions[policy.name].append(int(client.get_policy(policy.name).model_version))
                timings[(policy.name, seed)] = float(arrays["seconds"][0])
                frames.append(round_frame(scenario.name, policy.name, stream, arrays, seed_settings))
                if policy.name in replicas:
                    loop, replica_clock = replicas[policy.name]
                    label = f"{policy.name}{IN_PROCESS_SUFFIX}"
                    arrays = play(_ReplicaAgent(loop, stream, replica_clock), replica_clock, stream, seed_settings,
                                  progress=progress)
                    timings[(label, seed)] = float(arrays["seconds"][0])
                    frames.append(round_frame(scenario.name, label, stream, arrays, seed_settings))
            for spec in references:
                log_dir = None if root is None else root / spec.name / f"seed-{seed}"
                arrays = run_policy(scenario, spec, stream, seed_settings, log_dir=log_dir, progress=progress)
                timings[(spec.name, seed)] = float(arrays["seconds"][0])
                frames.append(round_frame(scenario.name, spec.name, stream, arrays, seed_settings))
    finally:
        for loop, _ in replicas.values():
            loop.close()

    described = [p.to_dict() for p in served]
    for entry in described:
        progress_of = sent[entry["name"]]
        entry.update(
            {
                "reward_statuses": dict(progress_of.statuses),
                "default_rewards_sent": progress_of.default_rewards_sent,
                "closed_events": progress_of.closed_events,
                "model_waits": progress_of.waits,
                "model_wait_seconds": round(progress_of.wait_seconds, 3),
                "model_wait_timeouts": progress_of.wait_timeouts,
                "model_version_after_seed": versions[entry["name"]],
            }
        )
    if compare_in_process:
        described += [
            {"name": f"{p.name}{IN_PROCESS_SUFFIX}", "kind": "served-replica", "replica_of": p.name} for p in served
        ]
    return SimulationResult.from_frames(
        frames,
        scenario=scenario.describe(),
        policies=[*described, *(spec.to_dict() for spec in references)],
        settings=settings,
        timings=timings,
        runner="grpc",
        extra={
            "server": {
                "address": server.address,
                "sync_every": server.sync_every,
                "rate": server.rate,
                "seeds_share_one_model": True,
            }
        },
    )


def _first_update_round(versions: np.ndarray) -> int:
    """Return the first round whose model version differs from the first round's, or the length."""
    changed = np.flatnonzero(versions != versions[0])
    return int(changed[0]) if changed.size else len(versions)


def compare_runners(result: SimulationResult, policy: str, confidence: float = 0.95) -> dict[str, Any]:
    """Compare a served policy's gRPC run with its in-process replica, seed by seed.

    Parameters
    ----------
    result : SimulationResult
        A result of :func:`run_server_simulation` with ``compare_in_process``.
    policy : str
        The served policy name.
    confidence : float
        Level of the paired intervals across seeds.

    Returns
    -------
    dict
        ``per_seed``, a DataFrame with the mean reward and mean expected
        reward of both runs and their rounds per model version. For the
        first seed only, it also has the rounds before either model first
        changed and the share of those rounds with the same action, because
        later seeds start from models trained on different decisions.
        ``mean_reward_difference`` and ``expected_reward_difference`` are
        the paired differences ``grpc - in-process`` across seeds, as
        :class:`~simulations.stats.Interval`.
    """
    replica = f"{policy}{IN_PROCESS_SUFFIX}"
    if policy not in result.policies or replica not in result.policies:
        raise ValueError(f"comparison needs {policy!r} and {replica!r} in the results; it has {result.policies}")
    table = result.rounds
    rows = []
    for position, seed in enumerate(result.seeds):
        grpc_rows = table[(table["policy"] == policy) & (table["seed"] == seed)].sort_values("round")
        local_rows = table[(table["policy"] == replica) & (table["seed"] == seed)].sort_values("round")
        grpc_versions = grpc_rows["model_version"].to_numpy()
        local_versions = local_rows["model_version"].to_numpy()
        row = {
            "seed": int(seed),
            "grpc_mean_reward": float(grpc_rows["reward"].mean()),
            "in_process_mean_reward": float(local_rows["reward"].mean()),
            "grpc_mean_expected_reward": float(grpc_rows["expected_reward"].mean()),
            "in_process_mean_expected_reward": float(local_rows["expected_reward"].mean()),
            "grpc_rounds_per_model_version": len(grpc_rows) / max(1, len(np.unique(grpc_versions))),
            "in_process_rounds_per_model_version": len(local_rows) / max(1, len(np.unique(local_versions))),
            "rounds_before_first_update": math.nan,
            "same_action_before_first_update": math.nan,
        }
        # Only the first seed starts both runs from the same model; later
        # seeds start from models trained on different decisions.
        if position == 0:
            before = min(_first_update_round(grpc_versions), _first_update_round(local_versions))
            grpc_actions = grpc_rows["action"].astype(str).to_numpy()[:before]
            local_actions = local_rows["action"].astype(str).to_numpy()[:before]
            row["rounds_before_first_update"] = before
            if before:
                row["same_action_before_first_update"] = float(np.mean(grpc_actions == local_actions))
        rows.append(row)
    per_seed = pd.DataFrame(rows)
    return {
        "policy": policy,
        "per_seed": per_seed,
        "mean_reward_difference": mean_interval(
            (per_seed["grpc_mean_reward"] - per_seed["in_process_mean_reward"]).to_numpy(), confidence
        ),
        "expected_reward_difference": mean_interval(
            (per_seed["grpc_mean_expected_reward"] - per_seed["in_process_mean_expected_reward"]).to_numpy(),
            confidence,
        ),
    }


def comparison_to_dict(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """Return :func:`compare_runners` output as JSON-ready data."""
    return {
        "policy": comparison["policy"],
        "per_seed": json.loads(comparison["per_seed"].to_json(orient="records")),
        "mean_reward_difference": comparison["mean_reward_difference"].__dict__,
        "expected_reward_difference": comparison["expected_reward_difference"].__dict__,
    }
