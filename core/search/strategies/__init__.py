"""Search strategies: grid, random, sobol and coarse-to-fine."""

from __future__ import annotations

from core.search.strategies.base import Strategy
from core.search.strategies.coarse_to_fine import C2FOptions, CoarseToFine, plan_coarse_to_fine
from core.search.strategies.grid import Grid, grid_points
from core.search.strategies.random import Random
from core.search.strategies.sobol import Sobol

__all__ = [
    "Strategy",
    "Grid",
    "Random",
    "Sobol",
    "CoarseToFine",
    "C2FOptions",
    "grid_points",
    "plan_coarse_to_fine",
]
