"""The Open Bandit Dataset sample and the evaluation policy its authors use.

The Open Bandit Dataset (ZOZO, Inc., CC BY 4.0) is real logged data of a
fashion e-commerce site. Each row is an item shown at one of three positions
of a recommendation widget, with its click and the propensity of the policy
that chose it. Its small sample (10,000 rows per logging policy ``random``
and ``bts`` and campaign ``all``, ``men``, ``women``) ships inside the
``obp`` 0.4.1 wheel. That package's code does not import with current
pandas, so it is installed with ``pip install --no-deps obp==0.4.1`` and only
its data files are read here, located through ``importlib.metadata``.

The position is part of the context: rows are (user, position) contexts and
each policy is a distribution over items per position. The evaluation policy
is Bernoulli Thompson sampling with the per-item Beta priors of the
package's ``prior_bts.yaml``: an item's probability at position ``k`` is the
probability that it ranks ``k``-th when one draw from every item's Beta
posterior is sorted, estimated by seeded Monte Carlo simulation.

Reference: Y. Saito, S. Aihara, M. Matsutani, Y. Narita, "Open Bandit
Dataset and Pipeline: Towards Realistic and Reproducible Off-Policy
Evaluation", NeurIPS 2021 Datasets and Benchmarks Track.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bandit.features import Action

from offline_eval.data import LoggedData
from offline_eval.estimators import Estimator, make_estimator
from offline_eval.targets import ActionPositionDistribution, TargetPolicy

__all__ = [
    "OBD_BEHAVIOR_POLICIES",
    "OBD_CAMPAIGNS",
    "obd_file",
    "read_obd",
    "bts_prior",
    "bts_action_position_distribution",
    "obd_bts_target",
    "OBD_POSITIONS",
    "compare_with_on_policy",
]

logger = logging.getLogger(__name__)

OBD_BEHAVIOR_POLICIES = ("random", "bts")
OBD_CAMPAIGNS = ("all", "men", "women")
OBD_POSITIONS = 3
"""Positions of the recommendation widget."""
DEFAULT_SIMULATIONS = 100_000
"""Monte Carlo draws for the Thompson-sampling distribution (the dataset authors' default)."""
_SIMULATION_BLOCK = 10_000


def obd_file(relative: str) -> Path:
    """Return the path of a file inside the installed ``obp`` distribution.

    Raises
    ------
    FileNotFoundError
        If ``obp`` is not installed or lacks the file, with the install command.
    """
    try:
        distribution = importlib.metadata.distribution("obp")
    except importlib.metadata.PackageNotFoundError as error:
        raise FileNotFoundError(
            "the Open Bandit Dataset sample ships in the obp wheel: install it with"
            " `pip install --no-deps obp==0.4.1` (its code is never imported)"
        ) from error
    path = Path(str(distribution.locate_file(f"obp/{relative}")))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed obp {distribution.version}; use obp==0.4.1")
    return path


def _check(behavior: str, campaign: str) -> None:
    if behavior not in OBD_BEHAVIOR_POLICIES:
        raise ValueError(f"behavior policy must be one of {OBD_BEHAVIOR_POLICIES}, got {behavior!r}")
    if campaign not in OBD_CAMPAIGNS:
        raise ValueError(f"campaign must be one of {OBD_CAMPAIGNS}, got {campaign!r}")


def _item_actions(campaign: str, behavior: str) -> tuple[Action, ...]:
    items = pd.read_csv(obd_file(f"dataset/obd/{behavior}/{campaign}/item_context.csv"), index_col=0)
    items = items.sort_values("item_id")
    actions = []
    for record in items.to_dict(orient="records"):
        features = {
            "price": float(record["item_feature_0"]),
            **{f"item_feature_{k}": str(record[f"item_feature_{k}"]) for k in (1, 2, 3)},
        }
        actions.append(Action(str(int(record["item_id"])), {"item": features}))
    return tuple(actions)


def read_obd(behavior: str = "random", campaign: str = "all", affinity: bool = True) -> LoggedData:
    """Read one logging policy's sample of one campaign.

    Parameters
    ----------
    behavior : {"random", "bts"}
        The logging policy: uniform random or Bernoulli Thompson sampling.
    campaign : {"all", "men", "women"}
        The campaign (80, 34 and 46 items).
    affinity : bool
        Whether to include the user-item affinity columns as context
        features (namespace ``affinity``).

    Returns
    -------
    LoggedData
        Rows in time order. Every item is eligible in every row and the
        action id is the item id. The 0-based position is both ``position``
        and part of the context.
    """
    _check(behavior, campaign)
    frame = pd.read_csv(obd_file(f"dataset/obd/{behavior}/{campaign}/{campaign}.csv"), index_col=0)
    actions = _item_actions(campaign, behavior)
    n, n_items = len(frame), len(actions)
    context_columns = {f"user.{c}": frame[c].astype(str) for c in frame.columns if c.startswith("user_feature")}
    if affinity:
        for column in frame.columns:
            if column.startswith("user-item_affinity"):
                context_columns[f"affinity.{column.rpartition('_')[2]}"] = frame[column].astype(float)
    contexts = pd.DataFrame(context_columns).reset_index(drop=True)
    times = pd.to_datetime(frame["timestamp"], utc=True, format="mixed")
    seconds = ((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    item_ids = frame["item_id"].to_numpy(dtype=np.int64)
    return LoggedData.from_arrays(
        contexts=contexts,
        actions=actions,
        action_index=np.tile(np.arange(n_items, dtype=np.int32), (n, 1)),
        logged_slot=item_ids,
        propensity=frame["propensity_score"].to_numpy(dtype=np.float64),
        reward=frame["click"].to_numpy(dtype=np.float64),
        position=frame["position"].to_numpy(dtype=np.int64) - 1,
        timestamp=seconds,
        source=f"Open Bandit Dataset sample, {behavior} policy, campaign {campaign}",
    )


def bts_prior(campaign: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-item Beta prior ``(alpha, beta)`` of ``prior_bts.yaml`` for a campaign."""
    _check("bts", campaign)
    with open(obd_file("policy/conf/prior_bts.yaml"), "rb") as handle:
        priors = yaml.safe_load(handle)
    alpha = np.asarray(priors[campaign]["alpha"], dtype=np.float64)
    beta = np.asarray(priors[campaign]["beta"], dtype=np.float64)
    if alpha.shape != beta.shape:
        raise ValueError(f"prior_bts.yaml campaign {campaign!r} has {alpha.size} alphas and {beta.size} betas")
    return alpha, beta


def bts_action_position_distribution(
    alpha: np.ndarray,
    beta: np.ndarray,
    n_positions: int = OBD_POSITIONS,
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
) -> np.ndarray:
    """Estimate Thompson sampling's item-by-position distribution by simulation.

    Each simulation draws ``theta_a ~ Beta(alpha_a, beta_a)`` for every item
    and shows the ``n_positions`` items with the largest draws, in order.

    Returns
    -------
    numpy.ndarray, shape (n_items, n_positions)
        Share of simulations that showed item ``a`` at position ``k``; each
        column sums to 1.
    """
    if n_simulations < 1:
        raise ValueError(f"n_simulations must be >= 1, got {n_simulations}")
    n_items = alpha.size
    if not 1 <= n_positions <= n_items:
        raise ValueError(f"n_positions must be in [1, {n_items}], got {n_positions}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_items, n_positions))
    done = 0
    while done < n_simulations:
        block = min(_SIMULATION_BLOCK, n_simulations - done)
        draws = rng.beta(alpha, beta, size=(block, n_items))
        top = np.argpartition(-draws, n_positions - 1, axis=1)[:, :n_positions]
        order = np.argsort(-np.take_along_axis(draws, top, axis=1), axis=1)
        ranked = np.take_along_axis(top, order, axis=1)
        for position in range(n_positions):
            counts[:, position] += np.bincount(ranked[:, position], minlength=n_items)
        done += block
    return counts / n_simulations


def obd_bts_target(
    campaign: str = "all",
    n_simulations: int = DEFAULT_SIMULATIONS,
    seed: int = 0,
    name: str = "bts",
) -> ActionPositionDistribution:
    """Return the Bernoulli Thompson sampling evaluation policy of a campaign as a target."""
    alpha, beta = bts_prior(campaign)
    table = bts_action_position_distribution(alpha, beta, OBD_POSITIONS, n_simulations, seed)
    return ActionPositionDistribution(action_ids=[str(i) for i in range(alpha.size)], table=table, name=name)


def compare_with_on_policy(
    campaign: str,
    estimators: Sequence[Estimator],
    extra_targets: Sequence[TargetPolicy] = (),
    seed: int = 0,
) -> pd.DataFrame:
    """Estimate the BTS policy's click rate from the random log and compare with its own log.

    The ground truth is the on-policy click rate of the ``bts`` log of the
    same campaign, which is how the dataset's authors validate estimators.
    Extra targets (such as a VW configuration trained counterfactually) are
    estimated too, without a ground truth.

    Returns
    -------
    pandas.DataFrame
        One row per (policy, estimator): estimate, 95% bootstrap interval,
        the on-policy value and the relative error ``|estimate - truth| / truth``
        (NaN for targets without a ground truth).
    """
    from offline_eval.evaluate import EvaluationSettings, evaluate

    random_log = read_obd("random", campaign)
    on_policy = read_obd("bts", campaign).reward
    truth = float(on_policy.mean())
    truth_error = float(on_policy.std(ddof=1)) / math.sqrt(on_policy.size)
    targets = [obd_bts_target(campaign, seed=seed), *extra_targets]
    settings = EvaluationSettings(estimators=tuple(estimators), seed=seed, time_bins=0)
    result = evaluate(random_log, targets, settings)
    frame = result.estimates[["policy", "estimator", "estimate", "lower", "upper"]].copy()
    frame.insert(0, "campaign", campaign)
    is_bts = frame["policy"] == "bts"
    frame["on_policy"] = np.where(is_bts, truth, np.nan)
    frame["on_policy_se"] = np.where(is_bts, truth_error, np.nan)
    frame["relative_error"] = np.where(is_bts, (frame["estimate"] - truth).abs() / truth, np.nan)
    frame["ess"] = frame["policy"].map({name: d.effective_sample_size for name, d in result.diagnostics.items()})
    return frame


def main(argv: Sequence[str] | None = None) -> None:
    """Print the relative errors of each estimator per campaign as Markdown tables."""
    from bandit.exploration import EpsilonGreedy
    from bandit.settings import PolicySettings

    from offline_eval.report import markdown_table
    from offline_eval.targets import CounterfactualVW

    parser = argparse.ArgumentParser(description="Open Bandit Dataset: BTS from the random log vs on-policy")
    parser.add_argument("--estimators", nargs="+", default=["dm", "ips", "snips", "dr", "sndr", "switch-dr", "sg-ips"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-vw", action="store_true", help="skip the counterfactually trained VW configuration")
    args = parser.parse_args(argv)
    estimators = [make_estimator(key) for key in args.estimators]
    frames = []
    for campaign in OBD_CAMPAIGNS:
        extra: list[TargetPolicy] = []
        if not args.no_vw:
            settings = PolicySettings("vw-egreedy", exploration=EpsilonGreedy(0.1), seed=args.seed)
            extra.append(CounterfactualVW(settings))
        frames.append(compare_with_on_policy(campaign, estimators, extra, args.seed))
    table = pd.concat(frames, ignore_index=True)
    bts = table[table["policy"] == "bts"]
    pivot = bts.pivot(index="estimator", columns="campaign", values="relative_error")[list(OBD_CAMPAIGNS)]
    print("Relative error |estimate - on-policy| / on-policy of the BTS policy, estimated from the random log:\n")
    print(markdown_table(pivot.reset_index(), digits=3))
    print("\nEstimates with 95% bootstrap intervals:\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
