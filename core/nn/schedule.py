"""Learning-rate schedules, evaluated once per epoch (epoch counted from 0)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["learning_rate"]


def learning_rate(config: Mapping[str, Any], epoch: int) -> float:
    """The learning rate α used during ``epoch`` (0 for the first epoch).

    With α0 = ``learning_rate``, d = ``lr_decay`` and s = ``lr_step_epochs``:
    ``none`` α0; ``inverse_time`` α0/(1 + d·epoch) (the course's); ``exponential`` α0·exp(−d·epoch);
    ``step`` α0·exp(−d·s·⌊epoch/s⌋) (a staircase of the exponential schedule).
    """
    a0 = float(config["learning_rate"])
    d = float(config["lr_decay"])
    kind = config["lr_decay_kind"]
    if kind == "none" or d == 0.0:
        return a0
    if kind == "inverse_time":
        return a0 / (1.0 + d * epoch)
    if kind == "exponential":
        return a0 * math.exp(-d * epoch)
    s = int(config["lr_step_epochs"])
    return a0 * math.exp(-d * s * (epoch // s))
