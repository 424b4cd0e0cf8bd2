"""Coarse-to-fine search: rounds that zoom into the region of the best trials (the chapter's 7.1.2).

Round 0 samples the whole space. After each round, the ``keep_top`` best finished trials so far define,
per dimension, the span they cover in unit space (so in ``r`` for a learning rate), widened by ``margin``
times that span on each side and clipped to the parent region; a ``choice`` keeps the values that appear
among them. Because the best trials so far always lie inside the current region, the regions are nested.

The study stops after ``rounds`` rounds, when the region has collapsed to a single configuration, when
``patience`` rounds in a row brought no improvement of the best value, or when the region has no unseen
configuration left. Diverged trials (NaN) count as worst and never define a region. A configuration that
was already evaluated is never proposed again. Round ``k``'s seed derives from the study seed and ``k``,
and regions are recomputed from the results, so any process replays the same study.

With ``narrow = "important"``, only the dimensions whose measured importance
(:func:`core.search.importance.importance`, on all results so far) is at least half an equal share
(``1 / (2d)``) are narrowed; the others stay as wide as their parent region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.search.importance import MIN_TRIALS, importance
from core.search.proposal import propose, round_seed
from core.search.space import SearchSpace
from core.search.strategies.base import Proposal, Rounds, Stop, Strategy, score

__all__ = ["CoarseToFine", "CoarseToFineOptions", "C2FOptions", "NARROW"]

#: How coarse-to-fine chooses the dimensions to narrow.
NARROW = ("all", "important")


@dataclass(frozen=True)
class CoarseToFineOptions:
    """The ``[strategy]`` knobs of coarse-to-fine.

    Attributes:
        rounds: the most rounds.
        trials_per_round: configurations per round.
        keep_top: how many of the best finished trials so far define the next region.
        margin: fraction of the top trials' span added on each side, in unit space.
        patience: stop after this many rounds in a row without improvement (None: never).
        narrow: ``"all"`` dimensions, or only the ``"important"`` ones (see the module docstring).
        sampler: the unit-cube sampler within a round, ``"random"`` or ``"sobol"``.
    """

    rounds: int = 3
    trials_per_round: int = 16
    keep_top: int = 4
    margin: float = 0.25
    patience: int | None = None
    narrow: str = "all"
    sampler: str = "random"


#: The former name of :class:`CoarseToFineOptions`.
C2FOptions = CoarseToFineOptions

_D = CoarseToFineOptions  # the constructor's defaults are the dataclass's


def _important_dims(
    space: SearchSpace, history: list[tuple[Mapping[str, Any], float]], seed: int
) -> list[str]:
    finite = [(p, v) for p, v in history if v != float("inf")]
    if len(finite) < max(MIN_TRIALS, 2 * len(space)):
        return space.names  # too little evidence: narrow everything
    shares = importance(space, [p for p, _ in history], [v for _, v in history], seed=seed)
    threshold = 0.5 / len(space)
    chosen = [k for k, s in shares.items() if s >= threshold]
    return chosen or space.names


class CoarseToFine(Strategy):
    """Coarse-to-fine rounds; see the module docstring.

    Args:
        space: the whole search space (round 0's region).
        rounds, trials_per_round, keep_top, margin, patience, narrow, sampler: the knobs
            (:class:`CoarseToFineOptions`).
        seed: the study seed; round ``k``'s seed derives from it and ``k``.
        fixed: the study's fixed keys, for reconciling configurations.

    Example:
        >>> from core.search import SearchSpace, CoarseToFine
        >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-1]}})
        >>> c2f = CoarseToFine(space, rounds=2, trials_per_round=4, keep_top=2, margin=0.25, seed=0)
        >>> first = c2f.next_round([])
        >>> second = c2f.next_round([(p, abs(p["learning_rate"] - 0.01)) for p in first])
        >>> len(c2f.regions), c2f.next_round([]), c2f.stop_reason
        (2, [], 'rounds')
        >>> c2f.plan([]).trials == first  # the same pure planning, from the results alone
        True
    """

    name = "coarse-to-fine"
    Options = CoarseToFineOptions

    def __init__(
        self,
        space: SearchSpace,
        *,
        rounds: int = _D.rounds,
        trials_per_round: int = _D.trials_per_round,
        keep_top: int = _D.keep_top,
        margin: float = _D.margin,
        seed: int = 0,
        patience: int | None = _D.patience,
        narrow: str = _D.narrow,
        sampler: str = _D.sampler,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.options = CoarseToFineOptions(
            rounds, trials_per_round, keep_top, margin, patience, narrow, sampler
        )

    @property
    def budget(self) -> int:
        return self.options.rounds * self.options.trials_per_round

    def plan(self, rounds: Rounds) -> Proposal | Stop:
        """Replay the study's regions from ``rounds`` and plan round ``len(rounds)``.

        Stops with ``"rounds"``, ``"collapsed"``, ``"patience"`` or ``"exhausted"``.
        """
        o = self.options
        k = len(rounds)
        if k >= o.rounds:
            return Stop("rounds")
        region = self.space
        history: list[tuple[Mapping[str, Any], float]] = []
        for j in range(1, k + 1):
            history.extend((p, score(v)) for p, v in rounds[j - 1])
            ranked = sorted((pair for pair in history if pair[1] != float("inf")), key=lambda pv: pv[1])
            top = [p for p, _ in ranked[: o.keep_top]]
            if not top:  # nothing finished yet: no evidence to zoom on
                continue
            only = (
                _important_dims(self.space, history, round_seed(self.seed, j, 1))
                if o.narrow == "important"
                else None
            )
            region = region.narrow(top, o.margin, only)
        if k and region.collapsed:
            return Stop("collapsed")
        if o.patience is not None and k > o.patience:
            stale = 0
            best = min((score(v) for _, v in rounds[0]), default=float("inf"))
            for j in range(1, k):
                round_best = min((score(v) for _, v in rounds[j]), default=float("inf"))
                if round_best < best:
                    best, stale = round_best, 0
                else:
                    stale += 1
            if stale >= o.patience:
                return Stop("patience")
        seen = [p for r in rounds for p, _ in r]
        trials = propose(
            region,
            o.trials_per_round,
            seed=round_seed(self.seed, k),
            sampler=o.sampler,
            fixed=self.fixed,
            seen=seen,
        )
        return Proposal(region, trials) if trials else Stop("exhausted")
