"""Search: spaces, study files, strategies (grid, random, sobol, coarse-to-fine), round planning, importance.

The public API the service and tests use::

    spec = load_study(text)                      # StudySpec, or BadInput naming "[section] key"
    plan = plan_round(spec, previous_rounds)     # RoundPlan(index, region, trials) or None
    shares = importance(spec, params, values)    # name -> share of the objective's variance
    spec.objective.better(a, b)                  # Objective: direction, "smaller is better" values

Strategies (:class:`Strategy`: a pure ``plan(rounds)`` and a ``budget``; each strategy's knobs and their
defaults are its options dataclass) are built from a study by ``spec.strategy_obj``.
"""

from __future__ import annotations

from core.search.distributions import Choice, Distribution, Int, Log, OneMinusLog, Uniform
from core.search.importance import importance
from core.search.objective import OBJECTIVES, Objective
from core.search.plan import RoundPlan, minimizing, plan_round
from core.search.proposal import propose, round_seed
from core.search.space import DISTRIBUTIONS, SearchSpace
from core.search.strategies import (
    STRATEGY_TYPES,
    C2FOptions,
    CoarseToFine,
    CoarseToFineOptions,
    Grid,
    GridOptions,
    Proposal,
    Random,
    RandomOptions,
    Sobol,
    SobolOptions,
    Stop,
    Strategy,
    grid_points,
)
from core.search.study import STRATEGIES, StudySpec, load_study, parse_stored, parse_study

__all__ = [
    "Distribution",
    "Uniform",
    "Log",
    "OneMinusLog",
    "Int",
    "Choice",
    "DISTRIBUTIONS",
    "SearchSpace",
    "StudySpec",
    "load_study",
    "parse_study",
    "parse_stored",
    "STRATEGIES",
    "OBJECTIVES",
    "Objective",
    "Strategy",
    "STRATEGY_TYPES",
    "Proposal",
    "Stop",
    "Grid",
    "Random",
    "Sobol",
    "CoarseToFine",
    "GridOptions",
    "RandomOptions",
    "SobolOptions",
    "CoarseToFineOptions",
    "C2FOptions",
    "grid_points",
    "RoundPlan",
    "plan_round",
    "minimizing",
    "propose",
    "round_seed",
    "importance",
]
