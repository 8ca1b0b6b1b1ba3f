"""PNG plots of a simulation result.

Four figures, each written with matplotlib's non-interactive Agg backend:

* ``cumulative_reward.png``: cumulative reward per policy with its band
  across seeds;
* ``cumulative_regret.png``: cumulative regret against the oracle, with
  bands;
* ``reward_over_time.png``: mean expected reward per window of rounds, which
  shows learning speed and the recovery after a drift (the drift round is
  marked when the scenario has one);
* ``segment_lift.png``: lift of expected reward over the baseline per
  segment, with intervals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from simulations.results import SimulationResult  # noqa: E402

__all__ = ["plot_all", "plot_curve", "plot_reward_over_time", "plot_segment_lift", "plot_replay"]

logger = logging.getLogger(__name__)

_DPI = 110


def _finish(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def _band_label(result: SimulationResult) -> str:
    seeds = len(result.seeds)
    return f"mean of {seeds} seeds, 95% band" if seeds > 1 else "one seed, no band"


def plot_curve(result: SimulationResult, column: str, title: str, ylabel: str, path: Path) -> Path:
    """Plot the cumulative sum of ``column`` per policy with bands across seeds."""
    curves = result.curves(column)
    figure, axes = plt.subplots(figsize=(8, 5))
    for policy in result.policies:
        rows = curves[curves["policy"] == policy]
        (line,) = axes.plot(rows["round"], rows["mean"], label=policy)
        axes.fill_between(rows["round"], rows["low"], rows["high"], color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("round")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{title} ({_band_label(result)})")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _finish(figure, path)


def plot_reward_over_time(result: SimulationResult, path: Path, windows: int = 40) -> Path:
    """Plot mean expected reward per window of rounds, with the oracle's for reference."""
    rounds = int(result.rounds["round"].max()) + 1
    window = max(1, rounds // windows)
    table = result.windowed("expected_reward", window)
    oracle = result.windowed("oracle_reward", window)
    figure, axes = plt.subplots(figsize=(8, 5))
    for policy in result.policies:
        rows = table[table["policy"] == policy]
        (line,) = axes.plot(rows["round"], rows["mean"], label=policy)
        axes.fill_between(rows["round"], rows["low"], rows["high"], color=line.get_color(), alpha=0.2, linewidth=0)
    best = oracle[oracle["policy"] == result.policies[0]]
    axes.plot(best["round"], best["mean"], color="black", linestyle=":", label="best possible")
    drift = result.metadata.get("scenario", {}).get("change_round")
    if drift is not None:
        axes.axvline(float(drift), color="grey", linestyle="--", label="drift")
    axes.set_xlabel("round")
    axes.set_ylabel(f"expected reward per round (window of {window})")
    axes.set_title(f"Reward over time ({_band_label(result)})")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _finish(figure, path)


def plot_segment_lift(result: SimulationResult, path: Path, baseline: str = "baseline") -> Path | None:
    """Plot the expected-reward lift over ``baseline`` per segment; None without a baseline."""
    if baseline not in result.policies:
        logger.info("no %r policy in the results: skipping the segment-lift plot", baseline)
        return None
    table = result.segment_lift(baseline)
    segments = sorted(table["segment"].unique())
    policies = [p for p in result.policies if p != baseline]
    if not policies:
        return None
    width = 0.8 / len(policies)
    positions = np.arange(len(segments))
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(segments) + 3), 5))
    for offset, policy in enumerate(policies):
        rows = table[table["policy"] == policy].set_index("segment").reindex(segments)
        lift = rows["lift"].to_numpy() * 100
        low = rows["lift_low"].to_numpy() * 100
        high = rows["lift_high"].to_numpy() * 100
        errors = None
        if not np.isnan(low).all():
            errors = np.vstack([lift - low, high - lift])
        axes.bar(positions + offset * width - 0.4 + width / 2, lift, width, yerr=errors, capsize=2, label=policy)
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xticks(positions, segments)
    axes.set_ylabel(f"lift of expected reward over {baseline} (%)")
    axes.set_title(f"Lift per segment ({_band_label(result)})")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _finish(figure, path)


def plot_all(result: SimulationResult, directory: str | os.PathLike[str], baseline: str = "baseline") -> list[Path]:
    """Write every plot into ``directory`` and return the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_curve(result, "reward", "Cumulative reward", "cumulative reward", out / "cumulative_reward.png"),
        plot_curve(result, "regret", "Cumulative regret", "cumulative regret vs. oracle", out / "cumulative_regret.png"),
        plot_reward_over_time(result, out / "reward_over_time.png"),
    ]
    lift = plot_segment_lift(result, out / "segment_lift.png", baseline)
    if lift is not None:
        paths.append(lift)
    return paths


def plot_replay(result, path: Path) -> Path:  # noqa: ANN001 - simulations.replay.ReplayResult
    """Plot the running replay reward against the number of matched events, one line per policy and seed."""
    curve = result.learning_curve()
    figure, axes = plt.subplots(figsize=(8, 5))
    colors: dict[str, str] = {}
    for (policy, seed), rows in curve.groupby(["policy", "seed"], sort=False):
        color = colors.get(policy)
        (line,) = axes.plot(rows["count"], rows["running_reward"], color=color, alpha=0.8,
                            label=policy if color is None else None)
        colors.setdefault(policy, line.get_color())
    axes.set_xlabel("matched events")
    axes.set_ylabel("mean reward over matched events")
    axes.set_title(f"Replay (Li et al. 2011) of {result.source}", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _finish(figure, path)
