"""Grid search: the comparison the chapter's 7.1.2 draws (5 × 5 tries only 5 values of each parameter)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.search.distributions import Choice, Int
from core.search.proposal import finalize
from core.search.space import SearchSpace
from core.search.strategies.base import Proposal, Rounds, Stop, Strategy

__all__ = ["Grid", "GridOptions", "grid_points", "grid_size"]


@dataclass(frozen=True)
class GridOptions:
    """The ``[strategy]`` knobs of grid.

    Attributes:
        points_per_dim: points per numeric dimension, or name -> points for every numeric dimension.
    """

    points_per_dim: int | Mapping[str, int] = 3


def _axis(d: Any, points: int) -> list[Any]:
    """``points`` values of one dimension at the centres of equal cells of unit space; every choice."""
    if isinstance(d, Choice):
        return d.values()
    values = [d.from_unit((i + 0.5) / points) for i in range(points)]
    if isinstance(d, Int):  # a short integer range may give repeats
        values = sorted(set(values))
    return values


def grid_points(
    space: SearchSpace, points_per_dim: int | Mapping[str, int], fixed: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The full grid: cell centres in unit space per numeric dimension, every value of a ``choice``.

    Cell centres (not the end points) so that a 2-point grid on ``log [1e-4, 1e-1]`` tries 10^-3.25 and
    10^-1.75 rather than the two extremes. Configurations equal after reconcile appear once.
    """
    per = points_per_dim if isinstance(points_per_dim, Mapping) else dict.fromkeys(space.dims, points_per_dim)
    axes = [_axis(d, int(per.get(k, 1))) for k, d in space.dims.items()]
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for combo in itertools.product(*axes):
        cand = finalize(space, dict(zip(space.dims, combo, strict=True)), fixed or {})
        out.setdefault(space.key(cand), cand)
    return list(out.values())


def grid_size(space: SearchSpace, points_per_dim: int | Mapping[str, int]) -> int:
    """Number of grid points before removing repeats."""
    per = points_per_dim if isinstance(points_per_dim, Mapping) else dict.fromkeys(space.dims, points_per_dim)
    return math.prod(len(_axis(d, int(per.get(k, 1)))) for k, d in space.dims.items())


class Grid(Strategy):
    """One round: the whole grid.

    Args:
        space: the search space.
        points_per_dim: points per numeric dimension (or name -> points); choices are enumerated.
        seed: unused (the grid is the grid), accepted like every strategy's.
        fixed: fixed keys, for reconciling configurations.
    """

    name = "grid"
    Options = GridOptions

    def __init__(
        self,
        space: SearchSpace,
        points_per_dim: int | Mapping[str, int] = GridOptions.points_per_dim,
        *,
        seed: int = 0,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.options = GridOptions(points_per_dim)

    @property
    def points_per_dim(self) -> int | Mapping[str, int]:
        """Points per numeric dimension, or name -> points."""
        return self.options.points_per_dim

    @property
    def budget(self) -> int:
        return grid_size(self.space, self.points_per_dim)

    def plan(self, rounds: Rounds) -> Proposal | Stop:
        if rounds:
            return Stop("complete")
        trials = grid_points(self.space, self.points_per_dim, self.fixed)
        return Proposal(self.space, trials) if trials else Stop("exhausted")
