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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.search.importance import MIN_TRIALS, importance
from core.search.proposal import propose, round_seed
from core.search.space import SearchSpace
from core.search.strategies.base import Plan, Strategy, score

__all__ = ["CoarseToFine", "C2FOptions", "plan_coarse_to_fine", "NARROW"]

#: How coarse-to-fine chooses the dimensions to narrow.
NARROW = ("all", "important")


@dataclass(frozen=True)
class C2FOptions:
    """The ``[strategy]`` knobs of coarse-to-fine."""

    rounds: int = 3
    trials_per_round: int = 16
    keep_top: int = 4
    margin: float = 0.25
    patience: int | None = None
    narrow: str = "all"
    sampler: str = "random"


Rounds = Sequence[Sequence[tuple[Mapping[str, Any], float]]]


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


def plan_coarse_to_fine(
    space: SearchSpace,
    rounds: Rounds,
    options: C2FOptions,
    *,
    seed: int,
    fixed: Mapping[str, Any] | None = None,
) -> tuple[list[SearchSpace], list[dict[str, Any]] | None, str | None]:
    """Replay a coarse-to-fine study and plan its next round. Pure and deterministic.

    Args:
        space: the whole search space (round 0's region).
        rounds: results of rounds ``0..k-1``: ``(params, objective)``, smaller is better, NaN if diverged.
        options: the strategy's knobs.
        seed: the study seed.
        fixed: the study's fixed keys (for reconciling configurations).

    Returns:
        ``(regions, trials, stop_reason)``: ``regions`` for rounds ``0..k`` (the last one is round ``k``'s,
        when it was computed); ``trials`` for round ``k`` and ``stop_reason`` None, or ``trials`` None and
        a reason: ``"rounds"``, ``"collapsed"``, ``"patience"`` or ``"exhausted"``.
    """
    k = len(rounds)
    if k >= options.rounds:
        return [space], None, "rounds"
    regions = [space]
    history: list[tuple[Mapping[str, Any], float]] = []
    for j in range(1, k + 1):
        history.extend((p, score(v)) for p, v in rounds[j - 1])
        ranked = sorted((pair for pair in history if pair[1] != float("inf")), key=lambda pv: pv[1])
        top = [p for p, _ in ranked[: options.keep_top]]
        parent = regions[-1]
        if not top:  # nothing finished yet: no evidence to zoom on
            regions.append(parent)
            continue
        only = (
            _important_dims(space, history, round_seed(seed, j, 1)) if options.narrow == "important" else None
        )
        regions.append(parent.narrow(top, options.margin, only))
    if k and regions[-1].collapsed:
        return regions, None, "collapsed"
    if options.patience is not None and k > options.patience:
        stale = 0
        best = min((score(v) for _, v in rounds[0]), default=float("inf"))
        for j in range(1, k):
            round_best = min((score(v) for _, v in rounds[j]), default=float("inf"))
            if round_best < best:
                best, stale = round_best, 0
            else:
                stale += 1
        if stale >= options.patience:
            return regions, None, "patience"
    seen = [p for r in rounds for p, _ in r]
    trials = propose(
        regions[-1],
        options.trials_per_round,
        seed=round_seed(seed, k),
        sampler=options.sampler,
        fixed=fixed,
        seen=seen,
    )
    if not trials:
        return regions, None, "exhausted"
    return regions, trials, None


class CoarseToFine(Strategy):
    """Coarse-to-fine rounds as an object; see the module docstring.

    Example:
        >>> from core.search import SearchSpace, CoarseToFine
        >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-1]}})
        >>> c2f = CoarseToFine(space, rounds=2, trials_per_round=4, keep_top=2, margin=0.25, seed=0)
        >>> first = c2f.next_round([])
        >>> second = c2f.next_round([(p, abs(p["learning_rate"] - 0.01)) for p in first])
        >>> len(c2f.regions), c2f.next_round([]), c2f.stop_reason
        (2, [], 'rounds')
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        rounds: int = 3,
        trials_per_round: int = 16,
        keep_top: int = 4,
        margin: float = 0.25,
        seed: int = 0,
        patience: int | None = None,
        narrow: str = "all",
        sampler: str = "random",
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.options = C2FOptions(rounds, trials_per_round, keep_top, margin, patience, narrow, sampler)

    @property
    def budget(self) -> int:
        return self.options.rounds * self.options.trials_per_round

    def _plan(self, rounds: list[list[tuple[dict[str, Any], float]]]) -> Plan:
        regions, trials, reason = plan_coarse_to_fine(
            self.space, rounds, self.options, seed=self.seed, fixed=self.fixed
        )
        if reason is not None:
            return None, None, reason
        return regions[-1], trials, None
