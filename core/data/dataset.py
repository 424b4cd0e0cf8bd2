"""The :class:`Dataset` a training run consumes, :func:`load_dataset`, its one entry point, and
:func:`describe_dataset`, the same dataset's :class:`DataShape` without loading its features."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from core.data.files import DEFAULT_TARGET, _is_npz, check_data_path, csv_summary, load_file, npz_summary
from core.data.named import DATASETS, RawData, describe_named, load_named
from core.data.shape import DataShape
from core.data.split import check_val_fraction, fit_standardizer, split_sizes, stratified_split
from core.errors import BadInput

__all__ = ["Dataset", "describe_dataset", "load_dataset"]

_DTYPES = ("float32", "float64")


@dataclass
class Dataset:
    """Standardized training and validation parts of one dataset.

    Attributes:
        name: the dataset's name, or the data file's path as given.
        X_train: (N_train, D) C-contiguous float32 or float64, standardized with training statistics.
        y_train: (N_train,) int64 labels in 0..C-1.
        X_val: (N_val, D) same dtype, standardized with the same (training) statistics.
        y_val: (N_val,) int64 labels in 0..C-1.
        n_classes: C.
        classes: the original label of each code: ``classes[y]``.
        mean: (D,) float64 training mean subtracted from every feature.
        scale: (D,) float64 training standard deviation (1 for constant features) divided by.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    classes: list
    mean: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def n_features(self) -> int:
        """D, the number of input features."""
        return int(self.X_train.shape[1])

    @property
    def shape(self) -> DataShape:
        """The split's sizes."""
        return DataShape(int(len(self.y_train)), int(len(self.y_val)), self.n_features, int(self.n_classes))

    def describe(self) -> dict:
        """A JSON-safe summary: name, sizes and classes."""
        return {
            "name": self.name,
            "n_train": int(len(self.y_train)),
            "n_val": int(len(self.y_val)),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "classes": list(self.classes),
        }


def load_dataset(
    name: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    target: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    dtype: str = "float32",
    root: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a named dataset or a data file, split it (stratified) and standardize it.

    Raw arrays are memoized per process, so repeated calls (one per trial in a worker) only pay
    for the split and the standardization.

    Args:
        name: one of :data:`DATASETS`; give either ``name`` or ``path``.
        path: a ``.csv`` file with a header and a label column, or a ``.npz`` file with ``X`` and ``y``.
        target: the CSV label column (default ``"label"``); ignored for named datasets and NPZ files.
        seed: seed of the train/validation split.
        val_fraction: share of every class held out for validation, in (0, 1).
        dtype: ``"float32"`` or ``"float64"``, the dtype of the feature arrays.
        root: when not None, ``path`` must lie under this directory (symlinks resolved).

    Returns:
        The split, standardized :class:`Dataset`.

    Raises:
        BadInput: an unknown name, both or neither of ``name`` and ``path``, a file outside ``root``,
            a missing or malformed file, an absent label column, fewer than 2 classes, a class too
            small to split, a bad ``val_fraction``, ``seed`` or ``dtype``.
    """
    if dtype not in _DTYPES:
        raise BadInput("dtype", dtype, "expected one of " + ", ".join(_DTYPES))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadInput("split seed", seed, "expected an integer ≥ 0")
    check_val_fraction(val_fraction)
    _check_source(name, path)
    raw: RawData = (
        load_named(name) if name is not None else load_file(path, target, root)  # type: ignore[arg-type]
    )
    train_idx, val_idx = stratified_split(raw.y, val_fraction, int(seed), raw.classes)
    X_train = raw.X[train_idx]
    mean, scale = fit_standardizer(X_train)
    X_train = np.ascontiguousarray((X_train - mean) / scale, dtype=dtype)
    X_val = np.ascontiguousarray((raw.X[val_idx] - mean) / scale, dtype=dtype)
    return Dataset(
        name=name if name is not None else str(path),
        X_train=X_train,
        y_train=raw.y[train_idx].copy(),
        X_val=X_val,
        y_val=raw.y[val_idx].copy(),
        n_classes=len(raw.classes),
        classes=list(raw.classes),
        mean=mean,
        scale=scale,
    )


def _check_source(name: str | None, path: object) -> None:
    if (name is None) == (path is None):
        raise BadInput(
            "dataset", name if name is not None else path,
            "expected exactly one of a dataset name (" + ", ".join(DATASETS) + ") or a data file",
        )


def describe_dataset(
    name: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    target: str | None = None,
    val_fraction: float = 0.2,
    root: str | os.PathLike[str] | None = None,
) -> DataShape:
    """The sizes :func:`load_dataset` would give, read cheaply: no feature is parsed or standardized.

    A named dataset's sizes are tabulated; a CSV file is scanned for its header, row widths and
    labels; an NPZ file's ``X`` is described by its header and only ``y`` is read. Every check of the
    file's structure and labels that :func:`load_dataset` makes is made (the feature values are checked
    when it is loaded). The split sizes use the split's own arithmetic, so they hold for every seed.

    Args:
        name, path, target, val_fraction, root: as for :func:`load_dataset`.

    Raises:
        BadInput: as :func:`load_dataset`, but for a feature value that is not a finite number.
    """
    check_val_fraction(val_fraction)
    _check_source(name, path)
    if name is not None:
        features, counts = describe_named(name)
    else:
        file = check_data_path(path, root)  # type: ignore[arg-type]
        features, counts = npz_summary(file) if _is_npz(file) else csv_summary(file, target or DEFAULT_TARGET)
    rows_train, rows_val = split_sizes(counts, val_fraction)
    return DataShape(rows_train, rows_val, int(features), len(counts))
