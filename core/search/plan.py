"""The service's entry point: a pure function from a study and its finished rounds to the next round.

Every process (the CLI, a local pool, a Celery worker after a crash) calls :func:`plan_round` with the
same inputs and gets the same answer: round seeds derive from the study seed and the round index, and
regions are recomputed from the stored results, never from process state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.search.strategies import Stop
from core.search.study import StudySpec

__all__ = ["RoundPlan", "plan_round", "minimizing"]


@dataclass(frozen=True)
class RoundPlan:
    """Round ``index`` of a study.

    Attributes:
        index: the round index, from 0.
        region: name -> ``[low, high]`` in parameter units, or the list of allowed choices (JSON-safe).
        trials: the round's configurations (searched keys only, reconciled with the fixed keys),
            none equal to an earlier one.
    """

    index: int
    region: dict[str, list[Any]]
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"index": self.index, "region": self.region, "trials": self.trials}


def minimizing(spec: StudySpec, value: float | None) -> float:
    """A stored objective as "smaller is better": ``spec.objective.minimizing(value)``."""
    return spec.objective.minimizing(value)


def plan_round(
    spec: StudySpec, previous: Sequence[Sequence[tuple[Mapping[str, Any], float | None]]]
) -> RoundPlan | None:
    """Round ``len(previous)`` of ``spec``, or None when the study is finished.

    Args:
        spec: the study.
        previous: per earlier round, its finished trials as ``(params, objective as stored)``:
            ``val_loss`` or ``val_accuracy`` per ``spec.objective``; NaN or None for diverged or failed.

    Returns:
        The next :class:`RoundPlan`, or None (every trial proposed, or coarse-to-fine stopped: its rounds
        done, its region collapsed or exhausted, or no improvement for ``patience`` rounds).
    """
    objective = spec.objective
    rounds = [[(p, objective.minimizing(v)) for p, v in r] for r in previous]
    step = spec.strategy_obj.plan(rounds)
    if isinstance(step, Stop):
        return None
    return RoundPlan(len(previous), step.region.region(), step.trials)
