"""Per-round results of a simulation and the tables derived from them.

One row per (policy, seed, round) with the chosen action, its logged
probability, the realized reward, the true expected reward of the chosen
action and of the best action, and the regret. Everything else (the summary,
the curves with bands, the per-segment lift) is computed from these rows, so
a saved ``rounds.parquet`` is enough to redo any table or plot.

Definitions used throughout:

``mean reward``
    Mean realized reward (clicks) per round.
``expected reward``
    Mean true click probability of the chosen actions; the same quantity
    without the noise of the clicks.
``regret``
    ``max_a E[r | x, a] - E[r | x, chosen]`` per round (pseudo-regret); its
    sum over rounds is the cumulative regret.
``lift``
    ``policy / baseline - 1`` of a seed's mean reward, paired by seed (both
    policies met the same visitors), summarized across seeds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulations.scenario import VisitorStream
from simulations.stats import Interval, band, mean_interval

if TYPE_CHECKING:
    from simulations.runner import RunSettings

__all__ = ["SimulationResult", "round_frame", "ROUND_COLUMNS"]

ROUND_COLUMNS = (
    "scenario",
    "policy",
    "seed",
    "round",
    "time",
    "segment",
    "action",
    "probability",
    "model_version",
    "reward",
    "expected_reward",
    "oracle_reward",
    "regret",
    "reported",
)
"""Columns of the per-round table, in order."""


def round_frame(
    scenario: str,
    policy: str,
    stream: VisitorStream,
    arrays: Mapping[str, np.ndarray],
    settings: RunSettings,
) -> pd.DataFrame:
    """Build the per-round table of one policy on one seed from the runner's arrays."""
    rounds = stream.rounds
    index = np.arange(rounds)
    chosen = np.asarray(arrays["action"], dtype=np.int64)
    expected = stream.expected[index, chosen]
    oracle = stream.oracle_rewards
    ids = np.array([a.id for a in stream.actions], dtype=object)
    return pd.DataFrame(
        {
            "scenario": scenario,
            "policy": policy,
            "seed": np.full(rounds, stream.seed, dtype=np.int64),
            "round": index.astype(np.int64),
            "time": settings.start_time + index * settings.interval_s,
            "segment": np.array(stream.segments, dtype=object),
            "action": ids[chosen],
            "probability": np.asarray(arrays["probability"], dtype=float),
            "model_version": np.asarray(arrays["model_version"], dtype=np.int64),
            "reward": np.asarray(arrays["reward"], dtype=float),
            "expected_reward": expected,
            "oracle_reward": oracle,
            "regret": oracle - expected,
            "reported": np.asarray(arrays["reported"], dtype=bool),
        },
        columns=list(ROUND_COLUMNS),
    )


def _interval_dict(prefix: str, interval: Interval) -> dict[str, float]:
    return {prefix: interval.mean, f"{prefix}_low": interval.low, f"{prefix}_high": interval.high}


@dataclass
class SimulationResult:
    """Per-round results of every policy and seed, with the run's metadata.

    Attributes
    ----------
    rounds : pandas.DataFrame
        One row per (policy, seed, round); columns :data:`ROUND_COLUMNS`.
    metadata : dict
        Scenario parameters, policies, run settings, runner name and wall
        time per (policy, seed).
    """

    rounds: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[pd.DataFrame],
        *,
        scenario: Mapping[str, Any],
        policies: Sequence[Mapping[str, Any]],
        settings: RunSettings,
        timings: Mapping[tuple[str, int], float],
        runner: str,
        extra: Mapping[str, Any] | None = None,
    ) -> SimulationResult:
        """Concatenate per-(policy, seed) frames and attach the metadata."""
        table = pd.concat(frames, ignore_index=True)
        for column in ("scenario", "policy", "segment", "action"):
            table[column] = table[column].astype("category")
        metadata = {
            "scenario": dict(scenario),
            "policies": [dict(p) for p in policies],
            "settings": {**asdict(settings), "seeds": list(settings.seeds)},
            "runner": runner,
            "seconds": {f"{name}/seed-{seed}": seconds for (name, seed), seconds in timings.items()},
            **(dict(extra) if extra else {}),
        }
        return cls(table, metadata)

    @property
    def policies(self) -> list[str]:
        """Policy names in the order they were run."""
        return [str(p) for p in pd.unique(self.rounds["policy"].astype(str))]

    @property
    def seeds(self) -> list[int]:
        """Seeds in the order they were run."""
        return [int(s) for s in pd.unique(self.rounds["seed"])]

    def per_seed(self) -> pd.DataFrame:
        """Return one row per (policy, seed): means and sums over rounds."""
        grouped = self.rounds.groupby(["policy", "seed"], observed=True, sort=False)
        table = grouped.agg(
            rounds=("round", "size"),
            mean_reward=("reward", "mean"),
            mean_expected_reward=("expected_reward", "mean"),
            mean_oracle_reward=("oracle_reward", "mean"),
            cumulative_reward=("reward", "sum"),
            cumulative_regret=("regret", "sum"),
        ).reset_index()
        table["policy"] = table["policy"].astype(str)
        return table

    def _seed_values(self, policy: str, column: str) -> pd.Series:
        table = self.per_seed()
        return table[table["policy"] == policy].set_index("seed")[column]

    def interval(self, policy: str, column: str = "mean_reward", confidence: float = 0.95) -> Interval:
        """Return the across-seed interval of a :meth:`per_seed` column for one policy."""
        values = self._seed_values(policy, column)
        if values.empty:
            raise ValueError(f"policy {policy!r} is not in the results; it has {self.policies}")
        return mean_interval(values.to_numpy(), confidence)

    def lift(
        self, policy: str, baseline: str, column: str = "mean_reward", confidence: float = 0.95
    ) -> Interval:
        """Return the relative lift ``policy / baseline - 1``, paired by seed."""
        ours = self._seed_values(policy, column)
        theirs = self._seed_values(baseline, column)
        if ours.empty or theirs.empty:
            raise ValueError(f"lift needs both {policy!r} and {baseline!r} in the results; it has {self.policies}")
        paired = pd.concat([ours, theirs], axis=1, keys=["ours", "theirs"], join="inner")
        if (paired["theirs"] <= 0).any():
            return Interval(math.nan, math.nan, math.nan, len(paired), confidence)
        return mean_interval((paired["ours"] / paired["theirs"] - 1.0).to_numpy(), confidence)

    def summary(self, baseline: str | None = "baseline", confidence: float = 0.95) -> pd.DataFrame:
        """Return one row per policy: mean reward, expected reward, regret and lift, with intervals.

        Parameters
        ----------
        baseline : str or None
            Policy the lift is computed against; no lift columns when it is
            ``None`` or not among the results.
        confidence : float
            Confidence level of every interval.
        """
        rows = []
        timings = self.metadata.get("seconds", {})
        for policy in self.policies:
            row: dict[str, Any] = {"policy": policy, "seeds": len(self._seed_values(policy, "rounds"))}
            row["rounds"] = int(self._seed_values(policy, "rounds").iloc[0])
            row.update(_interval_dict("mean_reward", self.interval(policy, "mean_reward", confidence)))
            row.update(
                _interval_dict("mean_expected_reward", self.interval(policy, "mean_expected_reward", confidence))
            )
            row.update(_interval_dict("cumulative_regret", self.interval(policy, "cumulative_regret", confidence)))
            if baseline is not None and baseline in self.policies:
                row.update(_interval_dict("lift", self.lift(policy, baseline, "mean_reward", confidence)))
            seconds = [v for k, v in timings.items() if k.startswith(f"{policy}/")]
            if seconds:
                row["rounds_per_second"] = row["rounds"] * len(seconds) / sum(seconds) if sum(seconds) > 0 else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def curves(self, column: str, points: int = 200, confidence: float = 0.95) -> pd.DataFrame:
        """Return cumulative sums of ``column`` per policy at up to ``points`` rounds, with bands.

        Columns: ``policy``, ``round`` (rounds done), ``mean``, ``low``, ``high``.
        """
        rows = []
        for policy in self.policies:
            matrix, grid = self._matrix(policy, column, points, cumulative=True)
            mean, low, high = band(matrix, confidence)
            rows.append(pd.DataFrame({"policy": policy, "round": grid + 1, "mean": mean, "low": low, "high": high}))
        return pd.concat(rows, ignore_index=True)

    def windowed(self, column: str, window: int, confidence: float = 0.95) -> pd.DataFrame:
        """Return the mean of ``column`` per policy over consecutive windows of rounds, with bands.

        Columns: ``policy``, ``round`` (the window's last round + 1),
        ``mean``, ``low``, ``high``. Shows reward over time, for example the
        recovery after a drift.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1 round, got {window!r}")
        rows = []
        for policy in self.policies:
            matrix = self._seed_matrix(policy, column)
            usable = (matrix.shape[1] // window) * window
            if usable == 0:
                raise ValueError(f"window {window} is longer than the {matrix.shape[1]} rounds of the run")
            means = matrix[:, :usable].reshape(matrix.shape[0], -1, window).mean(axis=2)
            mean, low, high = band(means, confidence)
            ends = np.arange(1, means.shape[1] + 1) * window
            rows.append(pd.DataFrame({"policy": policy, "round": ends, "mean": mean, "low": low, "high": high}))
        return pd.concat(rows, ignore_index=True)

    def segment_lift(
        self, baseline: str = "baseline", column: str = "expected_reward", confidence: float = 0.95
    ) -> pd.DataFrame:
        """Return the lift over ``baseline`` per (policy, segment), paired by seed.

        The default column is the expected reward, because a small segment
        has too few clicks for the realized reward to separate policies.
        """
        if baseline not in self.policies:
            raise ValueError(f"baseline {baseline!r} is not in the results; it has {self.policies}")
        means = (
            self.rounds.groupby(["policy", "segment", "seed"], observed=True)[column].mean().rename("value").reset_index()
        )
        means["policy"] = means["policy"].astype(str)
        means["segment"] = means["segment"].astype(str)
        base = means[means["policy"] == baseline].set_index(["segment", "seed"])["value"]
        rows = []
        for (policy, segment), group in means.groupby(["policy", "segment"], sort=False):
            if policy == baseline:
                continue
            reference = base.reindex(pd.MultiIndex.from_arrays([group["segment"], group["seed"]]))
            ratio = group["value"].to_numpy() / reference.to_numpy() - 1.0
            interval = mean_interval(ratio, confidence)
            rows.append(
                {
                    "policy": policy,
                    "segment": segment,
                    "lift": interval.mean,
                    "lift_low": interval.low,
                    "lift_high": interval.high,
                    "rounds": int((self.rounds["segment"] == segment).sum() / max(1, len(self.policies))),
                }
            )
        return pd.DataFrame(rows)

    def _seed_matrix(self, policy: str, column: str) -> np.ndarray:
        subset = self.rounds[self.rounds["policy"] == policy]
        if subset.empty:
            raise ValueError(f"policy {policy!r} is not in the results; it has {self.policies}")
        pivot = subset.pivot(index="seed", columns="round", values=column)
        return pivot.to_numpy(dtype=float)

    def _matrix(self, policy: str, column: str, points: int, cumulative: bool) -> tuple[np.ndarray, np.ndarray]:
        matrix = self._seed_matrix(policy, column)
        if cumulative:
            matrix = np.cumsum(matrix, axis=1)
        grid = np.unique(np.linspace(0, matrix.shape[1] - 1, num=min(points, matrix.shape[1])).round().astype(int))
        return matrix[:, grid], grid

    # -- files ------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str], baseline: str | None = "baseline") -> dict[str, Path]:
        """Write ``rounds.parquet``, ``per_seed.csv``, ``summary.csv`` and ``summary.json``.

        Returns the paths written, keyed by a short name.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "rounds": out / "rounds.parquet",
            "per_seed": out / "per_seed.csv",
            "summary_csv": out / "summary.csv",
            "summary_json": out / "summary.json",
        }
        self.rounds.to_parquet(paths["rounds"], compression="zstd", index=False)
        self.per_seed().to_csv(paths["per_seed"], index=False)
        summary = self.summary(baseline)
        summary.to_csv(paths["summary_csv"], index=False)
        document = {
            "metadata": self.metadata,
            "baseline": baseline if baseline in self.policies else None,
            "summary": json.loads(summary.to_json(orient="records")),
        }
        paths["summary_json"].write_text(json.dumps(document, indent=2, default=str) + "\n")
        return paths

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SimulationResult:
        """Read a result written by :meth:`save`."""
        path = Path(directory)
        rounds = pd.read_parquet(path / "rounds.parquet")
        document = json.loads((path / "summary.json").read_text())
        return cls(rounds, document.get("metadata", {}))
