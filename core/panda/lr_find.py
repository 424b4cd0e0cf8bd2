"""A short learning-rate range test: one epoch from the same initialisation at rates spaced on a log
scale, the training loss of each, and a suggested rate.

The suggestion is the rate with the lowest one-epoch loss divided by :data:`MARGIN`: the lowest point sits
close to where the loss starts to blow up, and a babysat run trains for many epochs more than one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from core.nn import train

__all__ = ["MARGIN", "lr_range", "suggest"]

#: The suggested rate is the best one-epoch rate divided by this.
MARGIN = 3.0


def lr_range(
    config: Mapping[str, Any],
    data: Any,
    *,
    low: float = 1e-5,
    high: float = 1.0,
    points: int = 11,
    on_point: Callable[[float, float], None] | None = None,
) -> list[tuple[float, float]]:
    """(rate, training loss after one epoch) at ``points`` rates from ``low`` to ``high`` (log-spaced);
    a diverged run's loss is infinite. The schedule is off during the test."""
    out = []
    for rate in np.geomspace(low, high, points):
        result = train({**config, "learning_rate": float(rate), "epochs": 1, "lr_decay": 0.0}, data)
        ok = result.status == "complete" and math.isfinite(result.train_loss)
        loss = result.train_loss if ok else math.inf
        out.append((float(rate), float(loss)))
        if on_point is not None:
            on_point(float(rate), float(loss))
    return out


def suggest(curve: list[tuple[float, float]]) -> float:
    """The lowest-loss rate of ``curve`` divided by :data:`MARGIN`.

    Example:
        >>> suggest([(1e-3, 2.0), (1e-2, 1.0), (1e-1, float("inf"))])
        0.0033333333333333335
    """
    rate, _ = min(curve, key=lambda p: (p[1], -p[0]))
    return rate / MARGIN
