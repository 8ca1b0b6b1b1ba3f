"""The ``microbandit evaluate`` subcommand.

Example::

    microbandit evaluate data/events/checkout --target logging --target uniform \\
        --target candidate=vw:candidate.yaml --estimators dm ips snips dr \\
        --segment user.device --out eval-out

``LOG`` is an event-log directory, a Parquet file of joined events, a plain
table (Parquet or CSV), an Azure Personalizer DSJSON file (``.json``,
``.jsonl``, ``.dsjson``), or ``obd:POLICY/CAMPAIGN`` for the Open Bandit
Dataset sample (``obd:random/all``).

Target specifications (``--target``, repeatable, optionally ``NAME=SPEC``):

``logging``
    the logging policy (on-policy mean);
``uniform``
    uniform random over the eligible actions;
``baseline`` or ``baseline:RULES.yaml``
    the first eligible action, or declarative baseline rules;
``checkpoint:PATH``
    a saved VW policy;
``vw:CONFIG.yaml`` or ``vw-args:ARGS``
    a candidate VW configuration trained counterfactually on the log;
``fixed:TABLE.json`` or ``fixed:MATRIX.npy``
    ``{"action_id": [p_position0, p_position1, ...], ...}``, or a per-row
    ``(rows, action slots)`` matrix aligned with the log's action sets;
``obd-bts`` or ``obd-bts:CAMPAIGN``
    the Open Bandit Dataset's Bernoulli Thompson sampling policy.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bandit.baseline import BaselineRules
from bandit.errors import MicrobanditError
from bandit.exploration import exploration_from_dict
from bandit.settings import PolicySettings

from offline_eval.data import LoggedData
from offline_eval.estimators import ESTIMATORS, make_estimator
from offline_eval.evaluate import EvaluationSettings, evaluate
from offline_eval.readers import read_log
from offline_eval.report import format_table, write_report, write_results
from offline_eval.reward_model import RewardModelSettings
from offline_eval.targets import (
    BaselineTarget,
    CheckpointTarget,
    CounterfactualVW,
    FixedDistribution,
    LoggingPolicy,
    TargetPolicy,
    UniformRandom,
    parse_probability_table,
)

__all__ = ["register", "run", "parse_target"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_TARGETS = ("logging", "uniform", "baseline")
DEFAULT_ESTIMATOR_KEYS = ("dm", "ips", "snips", "dr", "sndr", "switch-dr", "sg-ips")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``evaluate`` parser to the ``microbandit`` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="estimate offline how other policies would have done on a logged dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "log", metavar="LOG", help="event-log directory, Parquet/CSV table, DSJSON file, or obd:POLICY/CAMPAIGN"
    )
    parser.add_argument(
        "--target",
        action="append",
        metavar="[NAME=]SPEC",
        help=f"target policy to evaluate (repeatable); default: {' '.join(DEFAULT_TARGETS)}",
    )
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=list(DEFAULT_ESTIMATOR_KEYS),
        metavar="KEY[:PARAM=VALUE]",
        help=f"estimators to run, from {', '.join(ESTIMATORS)}; e.g. ips:clip=50 switch-dr:tau=20",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory for results, report and plots")
    parser.add_argument(
        "--interval",
        choices=("bootstrap", "normal"),
        default="bootstrap",
        help="interval of the estimates: percentile bootstrap or normal approximation",
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of intervals and bounds")
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="number of bootstrap resamples")
    parser.add_argument(
        "--bootstrap-method",
        choices=("poisson", "multinomial"),
        default="poisson",
        help="how resample counts are drawn (poisson: fast, per-row counts; multinomial: classic)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap, the reward model's folds and the OBD policy simulation"
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the reward model")
    parser.add_argument("--segment", action="append", default=[], metavar="COLUMN",
                        help="context feature (namespace.feature) or 'position' to break results down by (repeatable)")
    parser.add_argument("--reference", help="target the others are compared with (default: the first target)")
    parser.add_argument("--time-bins", type=int, default=10, help="number of time windows for estimates over time")
    parser.add_argument("--reward-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="reward bounds for the high-confidence bounds (default: observed min and max)")
    parser.add_argument("--bound-clip", type=float,
                        help="weight clip of the high-confidence bounds (default: each target's largest weight)")
    parser.add_argument("--policy", help="keep only this policy's rows of an event log (names a DSJSON log's policy)")
    parser.add_argument("--format", choices=("json", "parquet"), default="json", help="machine-readable result format")
    parser.add_argument("--report", choices=("md", "html"), default="md", help="human report format")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(handler=run)


def _load_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a mapping, got {type(data).__name__}")
    return data


def settings_from_mapping(data: dict[str, Any], default_name: str) -> PolicySettings:
    """Build candidate :class:`PolicySettings` from a YAML/JSON mapping.

    Keys: ``name``, ``exploration`` (``{type: ..., ...}``), ``interactions``,
    ``vw_args`` (string or list), ``bit_precision``, ``seed``, ``reward_range``.
    """
    allowed = {"name", "exploration", "interactions", "vw_args", "bit_precision", "seed", "reward_range"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown candidate settings {sorted(unknown)}; use {sorted(allowed)}")
    kwargs: dict[str, Any] = {"name": str(data.get("name", default_name))}
    if "exploration" in data:
        kwargs["exploration"] = exploration_from_dict(dict(data["exploration"]))
    if "interactions" in data:
        kwargs["interactions"] = tuple(tuple(group) for group in data["interactions"])
    if "vw_args" in data:
        vw_args = data["vw_args"]
        kwargs["vw_args"] = tuple(vw_args.split()) if isinstance(vw_args, str) else tuple(vw_args)
    for key in ("bit_precision", "seed"):
        if key in data:
            kwargs[key] = int(data[key])
    if "reward_range" in data:
        kwargs["reward_range"] = tuple(float(v) for v in data["reward_range"])
    return PolicySettings(**kwargs)


def parse_target(spec: str, log_spec: str = "", seed: int = 0) -> TargetPolicy:
    """Build a target policy from a command-line specification (see the module docstring).

    Raises
    ------
    ValueError
        If the kind is unknown or its argument is missing or invalid.
    """
    name = None
    head, sep, rest = spec.partition("=")
    if sep and ":" not in head and _NAME.fullmatch(head):
        name, spec = head, rest
    kind, _, argument = spec.partition(":")

    if kind == "logging":
        return LoggingPolicy(name=name or "logging")
    if kind == "uniform":
        return UniformRandom(name=name or "uniform")
    if kind == "baseline":
        rules = BaselineRules.from_dict(_load_mapping(Path(argument))) if argument else None
        return BaselineTarget(rules=rules, name=name or "baseline")
    if kind == "checkpoint":
        if not argument:
            raise ValueError("target 'checkpoint' needs a path: checkpoint:PATH")
        return CheckpointTarget(path=Path(argument), name=name or Path(argument).stem)
    if kind == "vw":
        if not argument:
            raise ValueError("target 'vw' needs a settings file: vw:CONFIG.yaml")
        settings = settings_from_mapping(_load_mapping(Path(argument)), name or Path(argument).stem)
        return CounterfactualVW(settings=settings, name=name or settings.name)
    if kind == "vw-args":
        settings = PolicySettings(name=name or "candidate", vw_args=tuple(argument.split()))
        return CounterfactualVW(settings=settings, name=name or "candidate")
    if kind == "fixed":
        if not argument:
            raise ValueError("target 'fixed' needs a file: fixed:TABLE.json or fixed:MATRIX.npy")
        if Path(argument).suffix.lower() == ".npy":
            return FixedDistribution(np.load(argument, allow_pickle=False), name=name or Path(argument).stem)
        return parse_probability_table(_load_mapping(Path(argument)), name or Path(argument).stem)
    if kind == "obd-bts":
        from offline_eval.obd import obd_bts_target

        campaign = argument or (log_spec.partition("/")[2] if log_spec.startswith("obd:") else "")
        if not campaign:
            raise ValueError("target 'obd-bts' needs a campaign (obd-bts:all, :men or :women) unless LOG is obd:...")
        return obd_bts_target(campaign, seed=seed, name=name or "bts")
    raise ValueError(
        f"unknown target kind {kind!r} in {spec!r}: use logging, uniform, baseline[:RULES], checkpoint:PATH,"
        " vw:CONFIG, vw-args:ARGS, fixed:TABLE.json or obd-bts[:CAMPAIGN]"
    )


def _progress_factory(enabled: bool) -> tuple[Callable[[str, int], Callable[[int], None]] | None, list[Any]]:
    if not enabled:
        return None, []
    from tqdm import tqdm

    bars: list[Any] = []

    def factory(description: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=description, leave=False, file=sys.stderr)
        bars.append(bar)
        return bar.update

    return factory, bars


def run(args: argparse.Namespace) -> int:
    """Run ``microbandit evaluate``; return the exit status (0 success, 2 invalid input)."""
    try:
        data: LoggedData = read_log(args.log, args.policy)
        targets = [parse_target(spec, args.log, args.seed) for spec in (args.target or DEFAULT_TARGETS)]
        settings = EvaluationSettings(
            estimators=tuple(make_estimator(key) for key in args.estimators),
            interval=args.interval,
            confidence=args.confidence,
            n_resamples=args.bootstrap_samples,
            bootstrap_method=args.bootstrap_method,
            seed=args.seed,
            reward_model=RewardModelSettings(folds=args.folds, seed=args.seed),
            reward_range=tuple(args.reward_range) if args.reward_range else None,
            bound_clip=args.bound_clip,
            reference=args.reference,
            segment_columns=tuple(args.segment),
            time_bins=args.time_bins,
        )
        logger.info("evaluating %d targets on %d rows from %s", len(targets), data.n_rows, data.source)
        factory, bars = _progress_factory(not args.no_progress and sys.stderr.isatty())
        try:
            result = evaluate(data, targets, settings, progress_factory=factory)
        finally:
            for bar in bars:
                bar.close()
    except (ValueError, TypeError, KeyError, FileNotFoundError, MicrobanditError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"microbandit evaluate: error: {message}", file=sys.stderr)
        return 2

    print(format_table(result))
    written = write_results(result, args.out, args.format)
    report = write_report(result, args.out, args.report)
    for path in [*written, report]:
        print(f"wrote {path}")
    return 0
