"""Choosing a round's picks among candidates with a fitted GP, so that the round stays diverse.

Two rules, both smaller-is-better:

- :func:`thompson`: one joint posterior sample of the function over the candidates per pick; pick ``i``
  is the best candidate of sample ``i`` not already picked. Samples disagree where the model is unsure,
  so picks spread out there and gather where it is sure.
- :func:`expected_improvement`: the candidate of largest expected improvement over the best target;
  each pick then joins the data as pending with the posterior mean as its value (a "kriging believer":
  its uncertainty vanishes), so the next pick goes elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from core.search.models.gp import GaussianProcess

__all__ = ["thompson", "expected_improvement"]


def thompson(
    gp: GaussianProcess, candidates: np.ndarray, pools: Sequence[np.ndarray], rng: np.random.Generator
) -> list[int]:
    """One pick per entry of ``pools`` (index arrays into ``candidates``), each from its own sample.

    Returns indices into ``candidates``, distinct; fewer when the pools run out.
    """
    if not pools:
        return []
    draws = gp.sample(candidates, len(pools), rng)
    chosen: list[int] = []
    for i, pool in enumerate(pools):
        free = [j for j in pool if j not in chosen]
        if free:
            chosen.append(int(free[int(np.argmin(draws[free, i]))]))
    return chosen


def _ei(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (best - mean) / sd
    return sd * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def expected_improvement(
    gp: GaussianProcess, candidates: np.ndarray, pools: Sequence[np.ndarray]
) -> list[int]:
    """One pick per pool by expected improvement, each later pick conditioned on the earlier ones."""
    chosen: list[int] = []
    model = gp
    best = float(gp.y.min())
    for pool in pools:
        free = np.array([j for j in pool if j not in chosen], dtype=int)
        if not len(free):
            continue
        mean, sd = model.predict(candidates[free])
        j = int(free[int(np.argmax(_ei(mean, sd, best)))])
        chosen.append(j)
        m, _ = model.predict(candidates[j : j + 1])
        model = model.condition(candidates[j : j + 1], m)
    return chosen
