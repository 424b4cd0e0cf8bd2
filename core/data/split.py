"""Stratified train/validation split and standardization fitted on the training part only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import BadInput

__all__ = ["check_class_counts", "check_val_fraction", "fit_standardizer", "split_sizes", "stratified_split",
           "val_counts"]


def check_val_fraction(val_fraction: float) -> float:
    """Return ``val_fraction`` as a float if it lies strictly between 0 and 1, else raise BadInput."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise BadInput("val_fraction", val_fraction, "expected a number in (0, 1)")
    value = float(val_fraction)
    if not 0.0 < value < 1.0:
        raise BadInput("val_fraction", val_fraction, "expected a number in (0, 1)")
    return value


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int, classes: list | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices so that every class keeps its share in both parts.

    Each class c with n_c rows gives round(val_fraction * n_c) rows to validation, clamped to
    [1, n_c - 1] so that both parts see every class. Which rows go where is drawn from ``seed``
    alone: the same labels, fraction and seed give the same split on any machine.

    Args:
        y: (N,) int64 labels in 0..C-1.
        val_fraction: share of each class for validation, in (0, 1).
        seed: the split's random seed (independent of the training seed).
        classes: original label values; unused, as errors name a class by its code, never by its
            label (a label is file content).

    Returns:
        ``(train_idx, val_idx)``: sorted (N_train,) and (N_val,) int64 row indices, disjoint, covering 0..N-1.

    Raises:
        BadInput: ``val_fraction`` out of (0, 1), or a class with fewer than 2 rows.
    """
    fraction = check_val_fraction(val_fraction)
    counts = np.bincount(y)
    check_class_counts(counts)
    rng = np.random.default_rng(seed)
    val_parts = []
    for code, n_val in enumerate(val_counts(counts, fraction)):
        rows = np.flatnonzero(y == code)
        val_parts.append(rng.permutation(rows)[:n_val])
    in_val = np.zeros(len(y), dtype=bool)
    in_val[np.concatenate(val_parts)] = True
    return np.flatnonzero(~in_val).astype(np.int64), np.flatnonzero(in_val).astype(np.int64)


def check_class_counts(counts: Sequence[int] | np.ndarray) -> None:
    """Refuse a class with fewer than 2 rows: it could not appear in both parts of the split.

    Args:
        counts: rows per class code, ``np.bincount(y)``.

    Raises:
        BadInput: naming the class by its code (0..C-1, in sorted order of the labels).
    """
    for code, count in enumerate(counts):
        if count < 2:
            raise BadInput(
                "data",
                f"class {code} (of {len(counts)}, in sorted label order) with {int(count)} row",
                "expected at least 2 rows per class, so that it appears in both training and validation",
            )


def val_counts(counts: Sequence[int] | np.ndarray, val_fraction: float) -> list[int]:
    """Rows each class gives to validation: round(val_fraction * n_c), clamped to [1, n_c - 1].

    The one place the split's arithmetic is written: :func:`stratified_split` draws that many rows of
    each class, and :func:`split_sizes` adds them up without drawing anything.
    """
    fraction = check_val_fraction(val_fraction)
    return [min(max(int(np.floor(fraction * int(n) + 0.5)), 1), int(n) - 1) for n in counts]


def split_sizes(counts: Sequence[int] | np.ndarray, val_fraction: float) -> tuple[int, int]:
    """``(rows_train, rows_val)`` that :func:`stratified_split` gives for these class counts (any seed).

    Raises:
        BadInput: a class with fewer than 2 rows, or ``val_fraction`` out of (0, 1).
    """
    check_class_counts(counts)
    n_val = sum(val_counts(counts, val_fraction))
    return int(sum(int(n) for n in counts)) - n_val, n_val


def fit_standardizer(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale of the training rows.

    The scale is the (biased) standard deviation, or 1 for a feature that is constant on the
    training rows, so that it maps to 0 instead of dividing by zero.

    Args:
        X_train: (N, D) training features.

    Returns:
        ``(mean, scale)``, both (D,) float64; standardized x is ``(x - mean) / scale``.
    """
    X = np.asarray(X_train, dtype=np.float64)
    if len(X) == 0:
        raise ValueError("cannot standardize zero rows")
    mean = X.mean(axis=0)
    # Two passes (mean, then squared deviations): the one-pass E[x²]−E[x]² cancels badly.
    scale = np.sqrt(((X - mean) ** 2).mean(axis=0))
    # Exact constancy, not a tolerance: a rounding-level std would blow noise up to unit scale.
    constant = X.max(axis=0) == X.min(axis=0)
    scale[constant] = 1.0
    mean[constant] = X[0, constant]  # so that a constant feature becomes exactly 0
    return mean, scale
