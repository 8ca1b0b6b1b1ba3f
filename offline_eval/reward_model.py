"""The reward model of the direct method and the doubly robust estimators.

A linear model of the reward on hashed features of (context, action),
cross-fitted in K folds. The predictions for the rows of fold ``k`` come from
a model fitted on the other folds only, so no row is scored by a model that
saw its reward. For 0/1 rewards it is an L2-regularized logistic regression
(L-BFGS); otherwise a ridge regression (LSQR, predictions clipped to the
training reward range). Both run on a SciPy sparse design matrix.

Features of the pair (context ``x``, action ``a``), each hashed into
``2**hash_bits`` columns:

- a bias and an indicator of the action id;
- every nonzero context feature (``namespace.feature=value`` with value 1
  for strings and booleans, ``namespace.feature`` with the number as value),
  the display position included;
- every context feature crossed with the action id, so each action gets its
  own slope for each feature;
- every action feature.

The model is deliberately simple: DR and its variants stay unbiased with
exact propensities whatever the model's error, and DM's error is the model's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.sparse.linalg import lsqr
from scipy.special import expit

from offline_eval.data import POSITION_NAMESPACE, LoggedData

__all__ = ["RewardModelSettings", "HashedDesign", "fit_predict_cross_fitted", "RidgeRewardModel"]

logger = logging.getLogger(__name__)

_MIX = np.uint64(0x9E3779B97F4A7C15)
PREDICT_BLOCK_ROWS = 100_000
"""Rows per block when building the design for prediction, to bound memory."""


def _stable_hash(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little"))


@dataclass(frozen=True)
class RewardModelSettings:
    """Hyperparameters of the cross-fitted ridge reward model.

    Parameters
    ----------
    folds : int
        Number of cross-fitting folds ``K`` (at least 2).
    l2 : float
        Ridge penalty (LSQR ``damp`` is its square root).
    hash_bits : int
        The design has ``2**hash_bits`` columns.
    max_iterations : int
        Solver iteration limit per fit (LSQR or L-BFGS).
    seed : int
        Seed of the fold assignment.
    kind : {"auto", "ridge", "logistic"}
        ``auto`` uses logistic regression when every reward is 0 or 1 and
        ridge regression otherwise.
    """

    folds: int = 5
    l2: float = 1.0
    hash_bits: int = 18
    max_iterations: int = 300
    seed: int = 0
    kind: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "ridge", "logistic"):
            raise ValueError(f"kind must be 'auto', 'ridge' or 'logistic', got {self.kind!r}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2 for cross-fitting, got {self.folds}")
        if not self.l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")
        if not 4 <= self.hash_bits <= 26:
            raise ValueError(f"hash_bits must be in [4, 26], got {self.hash_bits}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")


class HashedDesign:
    """Hashed sparse design rows for (logged row, action) pairs of one dataset.

    Context features with value 0 (or missing) are left out, so sparse
    numeric contexts cost only their nonzero entries.
    """

    def __init__(self, data: LoggedData, hash_bits: int) -> None:
        self.dimension = 1 << hash_bits
        self._mask = np.uint64(self.dimension - 1)
        frame = data.contexts
        if data.position is not None:
            frame = frame.assign(**{f"{POSITION_NAMESPACE}.position": data.position.astype(str)})
        n = data.n_rows
        row_parts, hash_parts, value_parts = [], [], []
        for column in frame.columns:
            hashes, values = self._column_tokens(str(column), frame[column])
            present = np.flatnonzero(values != 0.0)
            row_parts.append(present)
            hash_parts.append(hashes[present])
            value_parts.append(values[present])
        rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int64)
        order = np.argsort(rows, kind="stable")
        self.context_hashes = (np.concatenate(hash_parts) if hash_parts else np.zeros(0, np.uint64))[order]
        self.context_values = (np.concatenate(value_parts) if value_parts else np.zeros(0))[order]
        self.context_lengths = np.bincount(rows, minlength=n)
        self.context_starts = np.concatenate([[0], np.cumsum(self.context_lengths)[:-1]]).astype(np.int64)

        self.action_hashes = np.array([_stable_hash(f"action={a.id}") for a in data.actions], dtype=np.uint64)
        tokens = [
            [(f"{ns}.{name}", value) for ns, features in a.features.items() for name, value in features.items()]
            for a in data.actions
        ]
        width = max((len(t) for t in tokens), default=0)
        self.action_feature_hashes = np.zeros((len(data.actions), width), np.uint64)
        self.action_feature_values = np.zeros((len(data.actions), width))
        for i, action_tokens in enumerate(tokens):
            for j, (name, value) in enumerate(action_tokens):
                if isinstance(value, (bool, str)):
                    self.action_feature_hashes[i, j] = _stable_hash(f"af:{name}={value}")
                    self.action_feature_values[i, j] = 1.0
                else:
                    self.action_feature_hashes[i, j] = _stable_hash(f"af:{name}")
                    self.action_feature_values[i, j] = float(value)
        self.bias_hash = _stable_hash("bias")

    @staticmethod
    def _column_tokens(column: str, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
            table = np.array([_stable_hash(f"{column}={value}") for value in uniques] + [np.uint64(0)], np.uint64)
            hashes = table[codes]  # code -1 (missing) picks the trailing 0 entry
            values = (codes >= 0).astype(np.float64)
            return hashes, values
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        hashes = np.full(numbers.shape, _stable_hash(column), np.uint64)
        return hashes, np.where(np.isnan(numbers), 0.0, numbers)

    def rows(self, row_index: np.ndarray, action_index: np.ndarray) -> sp.csr_matrix:
        """Return the design rows of the pairs ``(row_index[j], action_index[j])``."""
        m = row_index.size
        pair = np.arange(m)
        action_hash = self.action_hashes[action_index]

        lengths = self.context_lengths[row_index]
        entry_pair = np.repeat(pair, lengths)
        first_entry = np.cumsum(lengths) - lengths
        entry = self.context_starts[row_index][entry_pair] + (np.arange(entry_pair.size) - first_entry[entry_pair])
        context_hash = self.context_hashes[entry]
        context_value = self.context_values[entry]
        with np.errstate(over="ignore"):
            crossed = (context_hash ^ (action_hash[entry_pair] * _MIX)) * _MIX

        width = self.action_feature_hashes.shape[1]
        row_blocks = [pair, pair, entry_pair, entry_pair, np.repeat(pair, width)]
        hash_blocks = [
            np.full(m, self.bias_hash, np.uint64),
            action_hash,
            context_hash,
            crossed,
            self.action_feature_hashes[action_index].ravel(),
        ]
        value_blocks = [
            np.ones(2 * m),
            context_value,
            context_value,
            self.action_feature_values[action_index].ravel(),
        ]
        rows = np.concatenate(row_blocks)
        columns = (np.concatenate(hash_blocks) & self._mask).astype(np.int64)
        values = np.concatenate(value_blocks)
        return sp.csr_matrix((values, (rows, columns)), shape=(m, self.dimension))


class RidgeRewardModel:
    """A ridge or L2-regularized logistic regression on a :class:`HashedDesign`.

    ``kind="ridge"`` minimizes ``||X b - r||^2 + l2 ||b||^2`` with LSQR;
    ``kind="logistic"`` (0/1 rewards) minimizes the log loss plus
    ``l2 / 2 ||b||^2`` with L-BFGS and predicts probabilities.
    """

    def __init__(self, design: HashedDesign, settings: RewardModelSettings, kind: str = "ridge") -> None:
        if kind not in ("ridge", "logistic"):
            raise ValueError(f"reward model kind must be 'ridge' or 'logistic', got {kind!r}")
        self.design = design
        self.settings = settings
        self.kind = kind
        self.coefficients = np.zeros(design.dimension)
        self.reward_range = (0.0, 1.0)

    def fit(self, rows: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> RidgeRewardModel:
        """Fit on logged pairs ``(rows, actions)`` with their rewards."""
        matrix = self.design.rows(rows, actions)
        self.reward_range = (float(rewards.min()), float(rewards.max()))
        # Solve over the hashed columns that occur in the training rows only;
        # the others have no data and their ridge solution is 0.
        used = np.unique(matrix.indices)
        matrix = matrix[:, used]
        self.coefficients = np.zeros(self.design.dimension)
        if self.kind == "ridge":
            result = lsqr(
                matrix,
                rewards,
                damp=float(np.sqrt(self.settings.l2)),
                atol=1e-6,
                btol=1e-6,
                iter_lim=self.settings.max_iterations,
            )
            self.coefficients[used] = result[0]
            return self
        transposed = matrix.T.tocsr()
        signs = 2.0 * rewards - 1.0
        l2 = self.settings.l2

        def loss_and_gradient(coefficients: np.ndarray) -> tuple[float, np.ndarray]:
            margins = signs * (matrix @ coefficients)
            loss = float(np.logaddexp(0.0, -margins).sum()) + 0.5 * l2 * float(coefficients @ coefficients)
            gradient = transposed @ (-signs * expit(-margins)) + l2 * coefficients
            return loss, gradient

        result = minimize(
            loss_and_gradient,
            np.zeros(used.size),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.settings.max_iterations},
        )
        self.coefficients[used] = result.x
        return self

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Return predictions for pairs ``(rows, actions)``, clipped to the training reward range."""
        predictions = np.empty(rows.size)
        for start in range(0, rows.size, PREDICT_BLOCK_ROWS):
            stop = min(start + PREDICT_BLOCK_ROWS, rows.size)
            predictions[start:stop] = self.design.rows(rows[start:stop], actions[start:stop]) @ self.coefficients
        if self.kind == "logistic":
            return expit(predictions)
        return np.clip(predictions, *self.reward_range)


def fit_predict_cross_fitted(
    data: LoggedData,
    settings: RewardModelSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Return cross-fitted reward predictions for every eligible (row, action) slot.

    Parameters
    ----------
    data : LoggedData
        The log; its logged rewards train the model.
    settings : RewardModelSettings, optional
        Hyperparameters; defaults to ``RewardModelSettings()``.
    progress : callable, optional
        Called with 1 after each fold.

    Returns
    -------
    numpy.ndarray, shape (n, k)
        Predictions aligned with ``data.action_index``; NaN at padding.
    """
    settings = settings or RewardModelSettings()
    n = data.n_rows
    folds = min(settings.folds, n)
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 rows, got {n}")
    design = HashedDesign(data, settings.hash_bits)
    kind = settings.kind
    if kind == "auto":
        kind = "logistic" if np.isin(data.reward, (0.0, 1.0)).all() else "ridge"
    if kind == "logistic" and not np.isin(data.reward, (0.0, 1.0)).all():
        raise ValueError("the logistic reward model needs rewards of 0 or 1; use kind='ridge'")
    fold_of_row = np.random.default_rng(settings.seed).permutation(n) % folds
    logged_action = data.logged_action
    valid_rows, valid_slots = np.nonzero(data.valid)
    predictions = np.full(data.action_index.shape, np.nan)
    for fold in range(folds):
        train = np.flatnonzero(fold_of_row != fold)
        model = RidgeRewardModel(design, settings, kind).fit(train, logged_action[train], data.reward[train])
        in_fold = fold_of_row[valid_rows] == fold
        rows, slots = valid_rows[in_fold], valid_slots[in_fold]
        predictions[rows, slots] = model.predict(rows, data.action_index[rows, slots])
        logger.debug("reward model fold %d/%d fitted on %d rows", fold + 1, folds, train.size)
        if progress is not None:
            progress(1)
    return predictions
