"""A study's objective: which validation metric it optimizes, and in which direction.

:class:`Objective` is a string enum, so a stored or printed objective is the plain name
(``json.dumps(Objective.VAL_LOSS) == '"val_loss"'``). Every "which way is better" decision in the search
goes through it: strategies and importance work on :meth:`Objective.minimizing` values.
"""

from __future__ import annotations

import math
from enum import StrEnum

__all__ = ["Objective", "OBJECTIVES"]


class Objective(StrEnum):
    """The metric a study optimizes: ``val_loss`` (minimized) or ``val_accuracy`` (maximized).

    Example:
        >>> import json
        >>> acc = Objective("val_accuracy")
        >>> acc.direction, acc.other, json.dumps(acc)
        ('maximize', <Objective.VAL_LOSS: 'val_loss'>, '"val_accuracy"')
        >>> acc.minimizing(0.9), acc.minimizing(None), Objective.VAL_LOSS.minimizing(float("nan"))
        (-0.9, inf, inf)
        >>> acc.better(0.9, 0.8), acc.better(float("nan"), 0.1)
        (True, False)
    """

    VAL_LOSS = "val_loss"
    VAL_ACCURACY = "val_accuracy"

    @property
    def maximize(self) -> bool:
        """True when a larger value is better."""
        return self is Objective.VAL_ACCURACY

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"``."""
        return "maximize" if self.maximize else "minimize"

    @property
    def other(self) -> Objective:
        """The other metric (the one a study reports beside its objective)."""
        return Objective.VAL_LOSS if self.maximize else Objective.VAL_ACCURACY

    def minimizing(self, value: float | None) -> float:
        """``value`` as "smaller is better": accuracy negated; None, NaN and ±inf (failed, diverged) +inf.

        Also a sort key: ``sorted(values, key=objective.minimizing)`` puts the best first.
        """
        if value is None:
            return math.inf
        v = float(value)
        if not math.isfinite(v):
            return math.inf
        return -v if self.maximize else v

    def better(self, a: float | None, b: float | None) -> bool:
        """True when ``a`` is strictly better than ``b`` (a failed or diverged value never is)."""
        return self.minimizing(a) < self.minimizing(b)


#: Objective names, as a study file's ``objective`` gives them.
OBJECTIVES: tuple[str, ...] = tuple(o.value for o in Objective)
