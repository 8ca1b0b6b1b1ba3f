"""Replay of uniformly random logs: an unbiased online-learning curve on real data.

The replay method of L. Li, W. Chu, J. Langford and X. Wang, "Unbiased
Offline Evaluation of Contextual-bandit-based News Article Recommendation
Algorithms", WSDM 2011. The replay walks through events logged by a
uniformly random policy in time order. At each event the learner chooses
among the logged event's eligible actions. When it picks the logged action, the event counts:
its logged reward is the learner's reward and the learner learns from it.
Otherwise the event is skipped and the learner's state does not change.
Because the logging policy was uniform, the counted events are an unbiased
sample of what the learner would have met online, so the mean reward over
counted events estimates its online reward. About one event in K counts,
with K eligible actions.

VW policies run through :class:`~bandit.loop.DecisionLoop` with deferred
activation: a decision is activated and rewarded only when it matches the
logged action, so an unmatched decision is never learned, as the method
requires.

The data is the Open Bandit Dataset sample read by
:func:`offline_eval.obd.read_obd` (rows are (user, position) contexts; every
item is eligible).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandit.loop import DecisionLoop
from bandit.policy import uniform_draw
from bandit.settings import JoinSettings
from simulations.policies import PolicySpec, SimulatedClock
from simulations.scenario import derive_seed
from simulations.stats import Interval, mean_interval

__all__ = ["ReplayResult", "replay_logged", "replay_obd", "logged_contexts"]

logger = logging.getLogger(__name__)


def logged_contexts(data) -> list[dict[str, dict[str, object]]]:  # noqa: ANN001 - offline_eval.data.LoggedData
    """Turn a logged data set's ``namespace.feature`` columns (and position) into context namespaces."""
    columns = list(data.contexts.columns)
    split = [column.partition(".") for column in columns]
    values = data.contexts.to_numpy(dtype=object)
    contexts = []
    for row_index in range(len(values)):
        context: dict[str, dict[str, object]] = {}
        for (namespace, _, name), value in zip(split, values[row_index]):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            context.setdefault(namespace, {})[name] = value
        if data.position is not None:
            context.setdefault("slot", {})["position"] = str(int(data.position[row_index]))
        contexts.append(context)
    return contexts


@dataclass
class ReplayResult:
    """Per-event replay outcomes of every policy and seed.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per (policy, seed, logged event): ``policy``, ``seed``,
        ``event`` (index in the log), ``matched`` and ``reward`` (NaN when
        not matched).
    source : str
        Description of the replayed log.
    """

    events: pd.DataFrame
    source: str

    @property
    def policies(self) -> list[str]:
        """Policy names in run order."""
        return [str(p) for p in pd.unique(self.events["policy"])]

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Return per policy: mean matched events, and the replay reward with its interval across seeds."""
        rows = []
        for policy in self.policies:
            subset = self.events[self.events["policy"] == policy]
            per_seed = subset.groupby("seed").agg(matched=("matched", "sum"), reward=("reward", "mean"))
            interval: Interval = mean_interval(per_seed["reward"].fillna(0.0).to_numpy(), confidence)
            rows.append(
                {
                    "policy": policy,
                    "seeds": len(per_seed),
                    "matched_events": float(per_seed["matched"].mean()),
                    "clicks": float(subset["reward"].sum() / len(per_seed)),
                    "replay_reward": interval.mean,
                    "replay_reward_low": interval.low,
                    "replay_reward_high": interval.high,
                }
            )
        return pd.DataFrame(rows)

    def learning_curve(self) -> pd.DataFrame:
        """Return the running mean reward over matched events, per policy and seed."""
        matched = self.events[self.events["matched"]].copy()
        matched["count"] = matched.groupby(["policy", "seed"]).cumcount() + 1
        matched["running_reward"] = matched.groupby(["policy", "seed"])["reward"].cumsum() / matched["count"]
        return matched[["policy", "seed", "event", "count", "running_reward"]].reset_index(drop=True)


def replay_logged(
    data,  # noqa: ANN001 - offline_eval.data.LoggedData
    policies: Sequence[PolicySpec],
    seeds: Sequence[int],
    *,
    interactions: tuple[tuple[str, ...], ...] = (("context.*", "action.*"),),
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay a uniformly random log for every policy and seed.

    Parameters
    ----------
    data : offline_eval.data.LoggedData
        The log; its logging policy must be uniform over each event's
        eligible actions (checked against the propensities).
    policies : sequence of PolicySpec
        ``uniform`` and ``vw`` policies; ``baseline`` picks the first
        eligible action; ``oracle`` is rejected because real logs have no
        hidden model.
    seeds : sequence of int
        Seeds; each changes the policies' sampling, not the log.
    interactions : tuple of tuple of str
        Feature crosses of VW policies whose spec sets none.

    Raises
    ------
    ValueError
        If the log was not logged uniformly, or an oracle is requested.
    """
    eligible_counts = (data.action_index >= 0).sum(axis=1)
    if not np.allclose(data.propensity, 1.0 / eligible_counts, rtol=1e-6):
        raise ValueError("replay needs a uniformly random log: propensities differ from 1 / eligible actions")
    for spec in policies:
        if spec.kind == "oracle":
            raise ValueError("replay on a real log has no oracle: remove 'oracle' from the policies")
    contexts = logged_contexts(data)
    actions_per_event = [
        tuple(data.actions[i] for i in data.action_index[t] if i >= 0) for t in range(len(data.reward))
    ]
    logged_ids = [data.actions[data.action_index[t, data.logged_slot[t]]].id for t in range(len(data.reward))]
    start = float(data.timestamp[0]) if data.timestamp is not None else 0.0

    frames = []
    for seed in seeds:
        for spec in policies:
            frames.append(
                _replay_one(spec, seed, data, contexts, actions_per_event, logged_ids, start, interactions, progress)
            )
    return ReplayResult(pd.concat(frames, ignore_index=True), data.source)


def _replay_one(spec, seed, data, contexts, actions_per_event, logged_ids, start, interactions, progress):  # noqa: ANN001, ANN202
    n = len(contexts)
    matched = np.zeros(n, dtype=bool)
    reward = np.full(n, np.nan)
    policy_seed = derive_seed(seed, spec.name) % (2**31 - 1)
    clock = SimulatedClock(start)
    loop = None
    if spec.kind == "vw":
        # The window only has to outlive the activation and reward that
        # follow a matched decision at the same instant.
        join = JoinSettings(reward_wait_time=1.0)
        loop = DecisionLoop(spec.settings(seed=policy_seed, join=join, interactions=interactions), clock=clock)
    chunk = max(1, n // 50)
    try:
        for t in range(n):
            clock.now = float(data.timestamp[t]) if data.timestamp is not None else start + t
            actions = actions_per_event[t]
            event_id = f"s{seed}-e{t}"
            if loop is not None:
                loop.advance(clock.now)
                chosen = loop.choose(contexts[t], actions, event_id=event_id, defer_activation=True).chosen_action
            elif spec.kind == "uniform":
                chosen = actions[min(int(uniform_draw(policy_seed, event_id) * len(actions)), len(actions) - 1)].id
            else:
                chosen = actions[0].id
            if chosen == logged_ids[t]:
                matched[t] = True
                reward[t] = float(data.reward[t])
                if loop is not None:
                    loop.activate(event_id)
                    loop.reward(event_id, reward[t])
            if progress is not None and (t + 1) % chunk == 0:
                progress(chunk)
    finally:
        if loop is not None:
            loop.close()
    if progress is not None and n % chunk:
        progress(n % chunk)
    return pd.DataFrame(
        {"policy": spec.name, "seed": seed, "event": np.arange(n), "matched": matched, "reward": reward}
    )


def replay_obd(
    policies: Sequence[PolicySpec],
    seeds: Sequence[int],
    *,
    campaign: str = "men",
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay the uniformly random Open Bandit Dataset sample of ``campaign``.

    NOTE: the sample has 10,000 events, so with 34 items (campaign ``men``)
    about 290 events count and, at a click rate near 0.5%, about 1.5 of them
    are clicks: the curve shows the method working, not which policy is
    better. The full data set gives meaningful curves.
    """
    from offline_eval.obd import read_obd

    data = read_obd("random", campaign)
    return replay_logged(data, policies, seeds, progress=progress)
