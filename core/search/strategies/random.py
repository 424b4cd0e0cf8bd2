"""Random search: independent uniform draws in unit space (the chapter's 7.1.2 recommendation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.search.proposal import propose, round_seed
from core.search.space import SearchSpace
from core.search.strategies.base import Proposal, Rounds, Stop, Strategy

__all__ = ["Random", "RandomOptions"]


@dataclass(frozen=True)
class RandomOptions:
    """The ``[strategy]`` knobs of random.

    Attributes:
        trials: how many configurations.
    """

    trials: int = 32


class Random(Strategy):
    """One round of ``trials`` distinct random configurations.

    Args:
        space: the search space.
        trials: how many configurations.
        seed: study seed; the round's stream is derived from it.
        fixed: fixed keys, for reconciling configurations.
    """

    name = "random"
    Options: type[RandomOptions] = RandomOptions
    #: The unit-cube sampler (see :func:`core.search.proposal.propose`).
    sampler = "random"

    def __init__(
        self,
        space: SearchSpace,
        trials: int = RandomOptions.trials,
        *,
        seed: int = 0,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.options = self.Options(int(trials))

    @property
    def trials(self) -> int:
        """How many configurations."""
        return self.options.trials

    @property
    def budget(self) -> int:
        return self.trials

    def plan(self, rounds: Rounds) -> Proposal | Stop:
        if rounds:
            return Stop("complete")
        trials = propose(
            self.space, self.trials, seed=round_seed(self.seed, 0), sampler=self.sampler, fixed=self.fixed
        )
        return Proposal(self.space, trials) if trials else Stop("exhausted")
