"""Overlap diagnostics of a target policy against the logging policy.

They are printed with every result, because an estimate from a log that
hardly overlaps with the target is weak evidence however narrow its interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["WeightDiagnostics", "weight_diagnostics", "MIN_ESS_FRACTION", "MAX_WEIGHT_SHARE"]

MIN_ESS_FRACTION = 0.01
"""Below this effective-sample-size fraction, support is reported as poor."""
MAX_WEIGHT_SHARE = 0.2
"""Above this share of the total weight held by one row, that row is reported as dominating."""
MIN_ESS = 30.0
"""Below this effective sample size, support is reported as poor whatever the fraction."""


@dataclass(frozen=True)
class WeightDiagnostics:
    """Importance-weight statistics of one target on one log.

    Attributes
    ----------
    rows : int
        Number of rows.
    effective_sample_size : float
        Kish's ``(sum w)^2 / sum w^2``; NaN when every weight is 0.
    max_weight, mean_weight : float
        Largest and mean importance weight ``pi(a_i|x_i) / p_i``.
    max_weight_row : int
        Row index holding the largest weight.
    max_weight_share : float
        Largest weight divided by the sum of weights.
    zero_support_share : float
        Share of rows where the target gives probability 0 to the logged action.
    propensity_min, propensity_max : float
        Range of the logged propensities.
    warnings : tuple of str
        Sentences describing poor support, dominating rows, or a mean weight
        far from 1 (the target takes actions the logging policy never took,
        or the propensities are wrong).
    """

    rows: int
    effective_sample_size: float
    max_weight: float
    mean_weight: float
    max_weight_row: int
    max_weight_share: float
    zero_support_share: float
    propensity_min: float
    propensity_max: float
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        result = asdict(self)
        result["warnings"] = list(self.warnings)
        return result


def weight_diagnostics(weight: np.ndarray, propensity: np.ndarray, row_ids: np.ndarray | None = None) -> WeightDiagnostics:
    """Compute :class:`WeightDiagnostics` and its warnings.

    Parameters
    ----------
    weight : numpy.ndarray, shape (n,)
        Importance weights of the logged actions.
    propensity : numpy.ndarray, shape (n,)
        Logged propensities.
    row_ids : numpy.ndarray, optional
        Labels (event ids) used to name a dominating row in the warning.
    """
    n = weight.size
    total = float(weight.sum())
    square_total = float(np.square(weight).sum())
    effective = total * total / square_total if square_total > 0 else math.nan
    top = int(np.argmax(weight))
    max_weight = float(weight[top])
    share = max_weight / total if total > 0 else math.nan
    zero_share = float(np.mean(weight == 0.0))
    mean_weight = total / n
    warnings: list[str] = []

    if total == 0.0:
        warnings.append(
            "no overlap: the target gives probability 0 to every logged action, so weight-based estimates are"
            " undefined and model-based ones rest on the reward model alone"
        )
    else:
        if effective < max(MIN_ESS, MIN_ESS_FRACTION * n):
            warnings.append(
                f"poor support: the effective sample size is {effective:.1f} of {n} rows"
                f" ({100 * effective / n:.2f}%), so estimates rest on few rows"
            )
        if share > MAX_WEIGHT_SHARE and n > 1:
            label = f"row {top}" if row_ids is None else f"row {top} (event {row_ids[top]})"
            warnings.append(
                f"{label} with propensity {propensity[top]:.3g} has weight {max_weight:.4g},"
                f" {100 * share:.1f}% of the total weight: it dominates IPS-type estimates"
            )
        standard_error = float(weight.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        if abs(mean_weight - 1.0) > max(0.05, 3.0 * standard_error):
            warnings.append(
                f"mean importance weight is {mean_weight:.3f}, not 1 within sampling error: the target takes actions"
                " the logging policy rarely or never took, or the logged propensities are wrong"
            )
    return WeightDiagnostics(
        rows=n,
        effective_sample_size=effective,
        max_weight=max_weight,
        mean_weight=mean_weight,
        max_weight_row=top,
        max_weight_share=share,
        zero_support_share=zero_share,
        propensity_min=float(propensity.min()),
        propensity_max=float(propensity.max()),
        warnings=tuple(warnings),
    )
