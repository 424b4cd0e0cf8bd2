"""Random search: independent uniform draws in unit space (the chapter's 7.1.2 recommendation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.search.proposal import propose, round_seed
from core.search.space import SearchSpace
from core.search.strategies.base import Plan, Strategy

__all__ = ["Random"]


class Random(Strategy):
    """One round of ``trials`` distinct random configurations.

    Args:
        space: the search space.
        trials: how many configurations.
        seed: study seed; the round's stream is derived from it.
        fixed: fixed keys, for reconciling configurations.
    """

    sampler = "random"

    def __init__(
        self, space: SearchSpace, trials: int = 32, *, seed: int = 0, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.trials = int(trials)

    @property
    def budget(self) -> int:
        return self.trials

    def _plan(self, rounds: list[list[tuple[dict[str, Any], float]]]) -> Plan:
        if rounds:
            return None, None, "complete"
        trials = propose(
            self.space, self.trials, seed=round_seed(self.seed, 0), sampler=self.sampler, fixed=self.fixed
        )
        return self.space, trials, None
