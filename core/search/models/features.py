"""What a model of the results sees: trials as points, results as standardized targets.

A configuration becomes a vector of its unit-space coordinates (:meth:`SearchSpace.to_unit`), except
that a ``choice`` dimension holds the index of its value (the GP compares those by equality). Results
become targets: failed or diverged trials (inf) take the worst finished value (a failure is bad, but
not infinitely worse than the worst real result), then the values are replaced by normal scores of
their ranks, so one awful trial cannot flatten the differences among the good ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtri

from core.search.distributions import Choice
from core.search.space import SearchSpace

__all__ = ["categorical", "encode", "targets"]


def categorical(space: SearchSpace) -> np.ndarray:
    """True for the ``choice`` dimensions, shape ``(d,)``."""
    return np.array([isinstance(d, Choice) for d in space.dims.values()], dtype=bool)


def encode(space: SearchSpace, params: Mapping[str, Any]) -> np.ndarray:
    """A configuration as a model input: unit coordinates, the value's index for a choice.

    Example:
        >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-2]},
        ...                                "norm": {"choice": ["batch", "none"]}})
        >>> encode(space, {"learning_rate": 1e-3, "norm": "none"}).tolist()
        [0.5, 1.0]
    """
    return np.array(
        [
            float(d.choices.index(params[k])) if isinstance(d, Choice) else d.to_unit(params[k])
            for k, d in space.dims.items()
        ],
        dtype=float,
    )


def targets(values: Sequence[float], transform: str = "rank") -> np.ndarray:
    """Smaller-is-better values as standardized model targets (failures as the worst finished value).

    Args:
        values: the trials' values; inf (or NaN) for failed and diverged ones.
        transform: ``"rank"`` (normal scores of the ranks, ties averaged) or ``"standard"`` (z-scores).

    Example:
        >>> targets([1.0, 2.0, float("inf"), 0.5]).round(2).tolist()   # the failure ties with the worst
        [-0.42, 0.88, 0.88, -1.51]
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(len(v))
    v = np.where(finite, v, v[finite].max())
    if transform.startswith("clip"):
        # Values above a quantile (the median for "clip") are clipped to it: the good trials keep their
        # geometry, the bad ones become one plateau whatever their size.
        q = float(transform[4:] or 50)
        z = np.minimum(v, np.percentile(v, q))
        z = z - z.mean()
    elif transform == "rank":
        order = v.argsort(kind="stable")
        ranks = np.empty(len(v))
        ranks[order] = np.arange(len(v), dtype=float)
        for x in np.unique(v):  # ties (e.g. every failure) share their mean rank
            same = v == x
            ranks[same] = ranks[same].mean()
        z = ndtri((ranks + 0.5) / len(v))
    else:
        z = v - v.mean()
    sd = z.std()
    return z / sd if sd > 0 else np.zeros(len(v))
