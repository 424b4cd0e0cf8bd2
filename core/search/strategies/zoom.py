"""Coarse-to-fine version 1: nested zooms onto the hull of the best trials (``version = 1``).

Round 0 samples the whole space. After each round, the ``keep_top`` best finished trials so far define,
per dimension, the span they cover in unit space (so in ``r`` for a learning rate), widened by ``margin``
times that span on each side and clipped to the parent region; a ``choice`` keeps the values that appear
among them. Because the best trials so far always lie inside the current region, the regions are nested.
Trials are drawn uniformly in the region.

The study stops after ``rounds`` rounds, when the region has collapsed to a single configuration, when
``patience`` rounds in a row brought no improvement of the best value, or when the region has no unseen
configuration left. With ``narrow = "important"``, only the dimensions whose measured importance
(:func:`core.search.importance.importance`, on all results so far) is at least half an equal share
(``1 / (2d)``) are narrowed; the others stay as wide as their parent region.

Kept for studies that ask for it; its plans are pinned by ``tests/test_search_plan_pins.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.search.importance import MIN_TRIALS, importance
from core.search.proposal import propose, round_seed
from core.search.space import SearchSpace
from core.search.strategies.base import Proposal, Rounds, Stop, score

if TYPE_CHECKING:
    from core.search.strategies.coarse_to_fine import CoarseToFine

__all__ = ["plan_zoom", "important_dims"]


def important_dims(
    space: SearchSpace, history: list[tuple[Mapping[str, Any], float]], seed: int
) -> list[str]:
    """The dimensions with at least half an equal share of importance (all of them on little evidence)."""
    finite = [(p, v) for p, v in history if v != float("inf")]
    if len(finite) < max(MIN_TRIALS, 2 * len(space)):
        return space.names  # too little evidence: narrow everything
    shares = importance(space, [p for p, _ in history], [v for _, v in history], seed=seed)
    threshold = 0.5 / len(space)
    chosen = [k for k, s in shares.items() if s >= threshold]
    return chosen or space.names


def plan_zoom(c2f: CoarseToFine, rounds: Rounds, out_of_patience: bool) -> Proposal | Stop:
    """Version 1's round ``len(rounds)`` (the caller has checked the rounds limit).

    Args:
        c2f: the strategy (knobs, space, seed, fixed keys).
        rounds: the finished rounds' results.
        out_of_patience: True when ``patience`` rounds in a row brought no improvement.
    """
    o = c2f.options
    k = len(rounds)
    region = c2f.space
    history: list[tuple[Mapping[str, Any], float]] = []
    for j in range(1, k + 1):
        history.extend((p, score(v)) for p, v in rounds[j - 1])
        ranked = sorted((pair for pair in history if pair[1] != float("inf")), key=lambda pv: pv[1])
        top = [p for p, _ in ranked[: o.keep_top]]
        if not top:  # nothing finished yet: no evidence to zoom on
            continue
        only = (
            important_dims(c2f.space, history, round_seed(c2f.seed, j, 1))
            if o.narrow == "important"
            else None
        )
        region = region.narrow(top, o.margin, only)
    if k and region.collapsed:
        return Stop("collapsed")
    if out_of_patience:
        return Stop("patience")
    seen = [p for r in rounds for p, _ in r]
    trials = propose(
        region,
        o.trials_per_round,
        seed=round_seed(c2f.seed, k),
        sampler=o.sampler,
        fixed=c2f.fixed,
        seen=seen,
    )
    return Proposal(region, trials) if trials else Stop("exhausted")
