"""What every strategy offers: rounds of trials proposed from the results so far."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from core.search.space import SearchSpace

__all__ = ["Strategy", "History", "Plan", "score"]

#: ``(params, objective)`` pairs; smaller is better; NaN for a diverged or failed trial.
History = Sequence[tuple[Mapping[str, Any], float]]


#: What a strategy's planner returns: (region, trials, None) or (None, None, stop reason).
Plan = tuple[SearchSpace | None, list[dict[str, Any]] | None, str | None]


def score(value: float | None) -> float:
    """An objective as a sortable number: NaN, None and ±inf (diverged, failed) become +inf (worst)."""
    if value is None:
        return math.inf
    v = float(value)
    return v if math.isfinite(v) else math.inf


class Strategy(ABC):
    """A search strategy as an object: call :meth:`next_round` until it returns an empty list.

    Each call receives the results so far: either the whole history (all rounds, in order) or only the
    results of the round just proposed. The strategy records rounds itself, so both work.
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, fixed: Mapping[str, Any] | None = None) -> None:
        self.space = space
        self.seed = int(seed)
        self.fixed = dict(fixed or {})
        self._rounds: list[list[tuple[dict[str, Any], float]]] = []
        self._proposed: list[list[dict[str, Any]]] = []
        self._regions: list[SearchSpace] = []
        self.stop_reason: str | None = None

    @property
    def regions(self) -> list[dict[str, list[Any]]]:
        """One entry per proposed round: name -> ``[low, high]`` in parameter units, or allowed choices."""
        return [r.region() for r in self._regions]

    @property
    def region_spaces(self) -> list[SearchSpace]:
        """The proposed rounds' regions as :class:`SearchSpace` objects."""
        return list(self._regions)

    def next_round(self, history: History = ()) -> list[dict[str, Any]]:
        """The next round's configurations, or ``[]`` when the study is finished.

        Args:
            history: results so far as ``(params, objective)`` pairs, smaller is better, NaN for diverged.
        """
        if self._proposed:
            self._rounds.append(self._latest(history))
        if self.stop_reason is not None:
            return []
        region, trials, reason = self._plan(self._rounds)
        if reason is not None:
            self.stop_reason = reason
            return []
        assert region is not None and trials is not None
        self._regions.append(region)
        self._proposed.append(trials)
        return trials

    def _latest(self, history: History) -> list[tuple[dict[str, Any], float]]:
        """The results of the round just proposed, from a cumulative or a last-round-only history."""
        pairs = [(dict(p), score(v)) for p, v in history]
        done = sum(len(r) for r in self._rounds)
        earlier = [p for r in self._rounds for p, _ in r]
        if len(pairs) >= done and [p for p, _ in pairs[:done]] == earlier:
            return pairs[done:]
        return pairs

    @abstractmethod
    def _plan(self, rounds: list[list[tuple[dict[str, Any], float]]]) -> Plan:
        """(region, trials, None) for round ``len(rounds)``, or (None, None, reason) to stop."""

    @property
    @abstractmethod
    def budget(self) -> int:
        """The most trials this strategy will ask for."""
