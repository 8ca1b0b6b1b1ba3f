"""Console tables, machine-readable results and human reports with plots.

- :func:`format_table`: the terminal table (policy, estimator, estimate,
  interval and the policy's weight diagnostics), followed by warnings.
- :func:`write_results`: ``results.json`` or Parquet tables.
- :func:`write_report`: ``report.md`` or ``report.html`` with PNG plots of
  the estimates with intervals, the estimates over time, and the per-segment
  lift over the reference policy.
"""

from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from offline_eval.evaluate import EvaluationResult  # noqa: E402

__all__ = [
    "format_table",
    "write_results",
    "write_report",
    "markdown_table",
    "plot_estimates",
    "plot_over_time",
    "plot_segments",
]

logger = logging.getLogger(__name__)


def _number(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    return f"{value:.{digits}g}"


def estimates_with_diagnostics(result: EvaluationResult) -> pd.DataFrame:
    """Return the estimates table joined with each policy's diagnostics."""
    rows = []
    for record in result.estimates.to_dict(orient="records"):
        diagnostics = result.diagnostics[record["policy"]]
        rows.append(
            {
                "policy": record["policy"],
                "estimator": record["estimator"],
                "estimate": _number(record["estimate"]),
                "interval": (
                    f"[{_number(record['lower'])}, {_number(record['upper'])}]"
                    if not math.isnan(record["estimate"])
                    else "undefined"
                ),
                "ESS": _number(diagnostics.effective_sample_size, 5),
                "max w": _number(diagnostics.max_weight),
                "mean w": _number(diagnostics.mean_weight, 3),
                "zero-support": f"{100 * diagnostics.zero_support_share:.1f}%",
                "propensity": f"[{_number(diagnostics.propensity_min, 3)}, {_number(diagnostics.propensity_max, 3)}]",
            }
        )
    return pd.DataFrame(rows)


def format_table(result: EvaluationResult) -> str:
    """Return the terminal summary: the estimates table, comparisons and warnings."""
    confidence = int(round(100 * result.settings["confidence"]))
    lines = [
        f"{result.data_summary['source']}: {result.data_summary['rows']} rows, "
        f"{result.data_summary['actions']} actions, mean logged reward {result.data_summary['reward_mean']:.4g}",
    ]
    if result.data_summary["skipped"]:
        skipped = ", ".join(f"{count} {reason}" for reason, count in result.data_summary["skipped"].items())
        lines.append(f"skipped rows: {skipped}")
    lines.append(f"{confidence}% {result.settings['interval']} intervals")
    lines.append(estimates_with_diagnostics(result).to_string(index=False))
    if not result.comparisons.empty:
        lines.append("")
        lines.append(f"difference to {result.reference} (paired, same rows):")
        table = result.comparisons[["policy", "estimator", "difference", "lower", "upper", "better_with_high_confidence"]]
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    undefined = result.estimates[result.estimates["undefined"] != ""]
    for record in undefined.to_dict(orient="records"):
        lines.append(f"note: {record['policy']} / {record['estimator']}: {record['undefined']}")
    for warning in result.warnings():
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def write_results(result: EvaluationResult, out_dir: str | Path, fmt: str = "json") -> list[Path]:
    """Write the machine-readable result; return the paths written.

    ``json`` writes ``results.json`` (everything); ``parquet`` writes one
    Parquet file per table (estimates, diagnostics, bounds, comparisons,
    segments, over_time).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = out / "results.json"
        path.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=False, allow_nan=False))
        return [path]
    if fmt != "parquet":
        raise ValueError(f"result format must be 'json' or 'parquet', got {fmt!r}")
    diagnostics = pd.DataFrame(
        [{"policy": name, **d.to_dict(), "warnings": "\n".join(d.warnings)} for name, d in result.diagnostics.items()]
    )
    tables = {
        "estimates": result.estimates,
        "diagnostics": diagnostics,
        "bounds": result.bounds,
        "comparisons": result.comparisons,
        "segments": result.segments,
        "over_time": result.over_time,
    }
    paths = []
    for name, table in tables.items():
        path = out / f"{name}.parquet"
        table.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _main_estimator(result: EvaluationResult) -> str:
    """Pick the estimator the time and segment plots show: DR-type first, then SNIPS, then the first."""
    labels = list(dict.fromkeys(result.estimates["estimator"]))
    for preferred in ("dr", "sndr", "snips", "ips"):
        if preferred in labels:
            return preferred
    return labels[0]


def plot_estimates(result: EvaluationResult, path: Path) -> Path:
    """Plot every (policy, estimator) estimate with its interval."""
    frame = result.estimates
    policies = list(dict.fromkeys(frame["policy"]))
    estimators = list(dict.fromkeys(frame["estimator"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(policies) * max(1, len(estimators)) / 2), 4.5))
    width = 0.8 / max(1, len(estimators))
    for j, estimator in enumerate(estimators):
        part = frame[frame["estimator"] == estimator].set_index("policy").reindex(policies)
        x = np.arange(len(policies)) + (j - (len(estimators) - 1) / 2) * width
        estimate = part["estimate"].to_numpy(dtype=float)
        lower = part["lower"].to_numpy(dtype=float)
        upper = part["upper"].to_numpy(dtype=float)
        errors = np.vstack([estimate - lower, upper - estimate])
        ax.errorbar(x, estimate, yerr=np.nan_to_num(errors), fmt="o", capsize=3, label=estimator)
    ax.set_xticks(np.arange(len(policies)))
    ax.set_xticklabels(policies, rotation=20)
    ax.set_ylabel("estimated value (mean reward)")
    ax.set_title(f"Estimates with {int(round(100 * result.settings['confidence']))}% intervals")
    ax.legend(fontsize="small", ncols=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_over_time(result: EvaluationResult, path: Path) -> Path | None:
    """Plot each policy's estimate per time window (main estimator) with normal intervals."""
    if result.over_time.empty:
        return None
    preferred = [_main_estimator(result), *dict.fromkeys(result.over_time["estimator"])]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for policy, rows in result.over_time.groupby("policy", sort=False):
        # A policy whose preferred estimator is undefined (the logging policy
        # without PMFs has no DR) is drawn with its first defined estimator.
        defined = [e for e in preferred if rows.loc[rows["estimator"] == e, "estimate"].notna().any()]
        if not defined:
            continue
        part = rows[rows["estimator"] == defined[0]]
        ax.plot(part["window"], part["estimate"], marker="o", label=f"{policy} ({defined[0]})")
        ax.fill_between(part["window"], part["lower"], part["upper"], alpha=0.15)
    ax.set_xlabel("time window (equal numbers of rows, oldest first)")
    ax.set_ylabel("estimated value")
    ax.set_title("Estimates over time")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_segments(result: EvaluationResult, path: Path) -> Path | None:
    """Plot each policy's lift over the reference per segment value (main estimator)."""
    if result.segments.empty:
        return None
    estimator = _main_estimator(result)
    frame = result.segments[(result.segments["estimator"] == estimator) & (result.segments["policy"] != result.reference)]
    if frame.empty:
        return None
    frame = frame.assign(label=frame["segment"].astype(str) + "=" + frame["value"].astype(str))
    labels = list(dict.fromkeys(frame["label"]))
    policies = list(dict.fromkeys(frame["policy"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) * len(policies)), 4.5))
    width = 0.8 / len(policies)
    for j, policy in enumerate(policies):
        part = frame[frame["policy"] == policy].set_index("label").reindex(labels)
        x = np.arange(len(labels)) + (j - (len(policies) - 1) / 2) * width
        lift = part["lift"].to_numpy(dtype=float)
        errors = np.vstack([lift - part["lift_lower"].to_numpy(dtype=float), part["lift_upper"].to_numpy(dtype=float) - lift])
        ax.bar(x, lift, width=width, yerr=np.nan_to_num(errors), capsize=3, label=policy)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(f"lift over {result.reference} ({estimator})")
    ax.set_title("Per-segment lift")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """Return a DataFrame as a Markdown table, floats with ``digits`` significant digits."""
    if frame.empty:
        return "(none)"
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in frame.itertuples(index=False):
        cells = [_number(v, digits) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _sections(result: EvaluationResult, plots: dict[str, Path | None]) -> list[tuple[str, str | pd.DataFrame | Path]]:
    summary = result.data_summary
    skipped = ", ".join(f"{count} {reason}" for reason, count in summary["skipped"].items()) or "none"
    overview = (
        f"Log: {summary['source']}. Rows evaluated: {summary['rows']}; skipped rows: {skipped}. "
        f"Actions: {summary['actions']}; propensities in [{_number(summary['propensity_min'])}, "
        f"{_number(summary['propensity_max'])}]; mean logged reward {_number(summary['reward_mean'])}. "
        f"Intervals: {int(round(100 * result.settings['confidence']))}% {result.settings['interval']}"
        + (f" ({result.settings['n_resamples']} resamples, {result.settings['bootstrap_method']})"
           if result.settings["interval"] == "bootstrap" else "")
        + f". Reference policy: {result.reference}."
    )
    policies = pd.DataFrame([{"policy": k, "description": v} for k, v in result.descriptions.items()])
    warnings = result.warnings()
    undefined = result.estimates[result.estimates["undefined"] != ""]
    notes = [f"{r['policy']} / {r['estimator']}: {r['undefined']}" for r in undefined.to_dict(orient="records")]
    sections: list[tuple[str, str | pd.DataFrame | Path]] = [
        ("Overview", overview),
        ("Policies", policies),
        ("Estimates", estimates_with_diagnostics(result)),
        ("Warnings", "\n".join(f"- {w}" for w in warnings) if warnings else "No support warnings."),
    ]
    if notes:
        sections.append(("Undefined estimates", "\n".join(f"- {n}" for n in notes)))
    if plots.get("estimates"):
        sections.append(("Estimates plot", plots["estimates"]))  # type: ignore[arg-type]
    sections.append(("Paired differences to the reference", result.comparisons))
    sections.append(("High-confidence bounds (empirical Bernstein, clipped weights)", result.bounds))
    if not result.segments.empty:
        columns = [
            "segment", "value", "rows", "policy", "estimator",
            "estimate", "lower", "upper", "lift", "lift_lower", "lift_upper",
        ]
        sections.append(("Segments", result.segments[columns]))
        if plots.get("segments"):
            sections.append(("Per-segment lift plot", plots["segments"]))  # type: ignore[arg-type]
    if plots.get("over_time"):
        sections.append(("Estimates over time", plots["over_time"]))  # type: ignore[arg-type]
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    sections.append(("Run", f"Time per stage: {timings}."))
    return sections


def write_report(result: EvaluationResult, out_dir: str | Path, fmt: str = "md") -> Path:
    """Write ``report.md`` or ``report.html`` and its PNG plots; return the report's path."""
    if fmt not in ("md", "html"):
        raise ValueError(f"report format must be 'md' or 'html', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "estimates": plot_estimates(result, out / "estimates.png"),
        "over_time": plot_over_time(result, out / "over_time.png"),
        "segments": plot_segments(result, out / "segments.png"),
    }
    sections = _sections(result, plots)
    if fmt == "md":
        parts = ["# Offline evaluation report", ""]
        for title, body in sections:
            parts.append(f"## {title}")
            parts.append("")
            if isinstance(body, pd.DataFrame):
                parts.append(markdown_table(body))
            elif isinstance(body, Path):
                parts.append(f"![{title}]({body.name})")
            else:
                parts.append(body)
            parts.append("")
        path = out / "report.md"
        path.write_text("\n".join(parts))
        return path
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Offline evaluation report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style></head><body>",
             "<h1>Offline evaluation report</h1>"]
    for title, body in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(body, pd.DataFrame):
            parts.append(body.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="NaN"))
        elif isinstance(body, Path):
            parts.append(f"<img src='{html.escape(body.name)}' alt='{html.escape(title)}'>")
        else:
            parts.append("<p>" + html.escape(body).replace("\n", "<br>") + "</p>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
