"""Search strategies: grid, random, sobol and coarse-to-fine, each behind :class:`Strategy`.

:data:`STRATEGY_TYPES` maps a study file's ``strategy`` name to its class; a study builds its strategy
with ``STRATEGY_TYPES[name].from_options(space, options, seed=..., fixed=...)``.
"""

from __future__ import annotations

from core.search.strategies.base import Proposal, Stop, Strategy
from core.search.strategies.coarse_to_fine import C2FOptions, CoarseToFine, CoarseToFineOptions
from core.search.strategies.grid import Grid, GridOptions, grid_points
from core.search.strategies.random import Random, RandomOptions
from core.search.strategies.sobol import Sobol, SobolOptions

__all__ = [
    "Strategy",
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
    "STRATEGY_TYPES",
]

#: Strategy name (as a study file gives it) -> class, in the order error messages list them.
STRATEGY_TYPES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Grid, Random, Sobol, CoarseToFine)}
