"""Benchmark offline evaluation on 1,000,000 logged rows with 10 actions.

Measures, in one run:

1. the cross-fitted reward model (5 folds) on those rows, reported apart;
2. IPS + SNIPS + DR point estimates from precomputed reward predictions,
   plus 1,000 bootstrap resamples with the fast bootstrap (Poisson counts and
   matrix products), and the same with multinomial counts;
3. the same estimates and resamples with a straightforward per-resample
   NumPy loop (draw n indices, index the arrays, recompute each estimate),
   the way obp 0.4.1 computes its bootstrap, as the reference.

Prints a Markdown table with times, ratios and peak memory. Run:

    .venv/bin/python benchmarks/bench_offline_eval.py [--rows N] [--resamples B]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

from bandit.features import Action
from offline_eval.data import LoggedData
from offline_eval.estimators import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedIPS
from offline_eval.evaluate import estimator_inputs
from offline_eval.intervals import bootstrap_estimates, bootstrap_estimates_loop, percentile_interval
from offline_eval.reward_model import RewardModelSettings, fit_predict_cross_fitted


def make_data(n: int, n_actions: int, seed: int) -> tuple[LoggedData, np.ndarray]:
    """Draw a synthetic log with two categorical features and one numeric one, and a target."""
    rng = np.random.default_rng(seed)
    device = rng.integers(0, 3, size=n)
    segment = rng.integers(0, 20, size=n)
    activity = rng.exponential(1.0, size=n)
    scores = rng.normal(size=(n, n_actions))
    logging_pmf = np.exp(scores)
    logging_pmf /= logging_pmf.sum(axis=1, keepdims=True)
    logging_pmf = 0.9 * logging_pmf + 0.1 / n_actions
    action = (rng.random(n)[:, None] > np.cumsum(logging_pmf, axis=1)).sum(axis=1)
    action = np.minimum(action, n_actions - 1)
    click = 1.0 / (1.0 + np.exp(-(-2.0 + 0.3 * device + 0.1 * (action % 4) + 0.2 * activity)))
    reward = (rng.random(n) < click).astype(np.float64)
    contexts = pd.DataFrame(
        {
            "user.device": pd.Categorical.from_codes(device, ["mobile", "desktop", "tablet"]).astype(str),
            "user.segment": segment.astype(str),
            "user.activity": activity,
        }
    )
    data = LoggedData.from_arrays(
        contexts=contexts,
        actions=[Action(f"a{k}", {}) for k in range(n_actions)],
        action_index=np.tile(np.arange(n_actions, dtype=np.int32), (n, 1)),
        logged_slot=action,
        propensity=logging_pmf[np.arange(n), action],
        reward=reward,
        logging_pmf=logging_pmf,
        source="benchmark",
    )
    target = rng.dirichlet(np.ones(n_actions), size=n)
    return data, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data, target = make_data(args.rows, args.actions, args.seed)

    started = time.perf_counter()
    predictions = fit_predict_cross_fitted(data, RewardModelSettings(folds=5, seed=args.seed))
    fit_seconds = time.perf_counter() - started

    estimators = (InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust())
    results = {}
    for method in ("poisson", "multinomial"):
        tracemalloc.start()
        started = time.perf_counter()
        inputs = estimator_inputs(data, target, predictions)
        terms = [e.round_terms(inputs) for e in estimators]
        estimates = [t.estimate() for t in terms]
        replicates = bootstrap_estimates(terms, args.resamples, args.seed, method)
        intervals = [percentile_interval(replicates[:, j]) for j in range(len(terms))]
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results[method] = (seconds, peak, estimates, intervals)

    started = time.perf_counter()
    inputs = estimator_inputs(data, target, predictions)
    terms = [e.round_terms(inputs) for e in estimators]
    loop_replicates = bootstrap_estimates_loop(terms, args.resamples, args.seed)
    loop_intervals = [percentile_interval(loop_replicates[:, j]) for j in range(len(terms))]
    loop_seconds = time.perf_counter() - started

    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {platform.python_version()}, numpy {np.__version__}")
    print(f"rows {args.rows}, actions {args.actions}, resamples {args.resamples}")
    print()
    print("| stage | seconds | ratio to loop | peak traced memory (MiB) |")
    print("| --- | --- | --- | --- |")
    print(f"| reward model, 5-fold cross-fitted logistic regression | {fit_seconds:.2f} | - | - |")
    for method, (seconds, peak, _, _) in results.items():
        print(
            f"| IPS + SNIPS + DR + {args.resamples} resamples, fast ({method}) | {seconds:.2f} |"
            f" {seconds / loop_seconds:.3f} | {peak / 2**20:.0f} |"
        )
    print(f"| same, per-resample NumPy loop (reference) | {loop_seconds:.2f} | 1 | - |")
    print()
    print(f"process peak RSS: {peak_rss_mib:.0f} MiB")
    for j, estimator in enumerate(estimators):
        fast = results["poisson"][3][j]
        exact = results["multinomial"][3][j]
        loop = loop_intervals[j]
        print(
            f"{estimator.label}: estimate {results['poisson'][2][j]:.5f}; 95% interval poisson"
            f" [{fast.lower:.5f}, {fast.upper:.5f}], multinomial [{exact.lower:.5f}, {exact.upper:.5f}],"
            f" loop [{loop.lower:.5f}, {loop.upper:.5f}]"
        )


if __name__ == "__main__":
    main()
