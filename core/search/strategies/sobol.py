"""Sobol search: scrambled quasi-random points, for more even coverage than independent draws."""

from __future__ import annotations

from dataclasses import dataclass

from core.search.strategies.random import Random, RandomOptions

__all__ = ["Sobol", "SobolOptions"]


@dataclass(frozen=True)
class SobolOptions(RandomOptions):
    """The ``[strategy]`` knobs of sobol: the same as random's."""


class Sobol(Random):
    """One round of ``trials`` distinct configurations from a scrambled Sobol sequence (seeded).

    Same arguments as :class:`~core.search.strategies.random.Random`. Budgets that are powers of two keep
    the sequence's balance properties exactly; other budgets take a prefix, still low-discrepancy.
    """

    name = "sobol"
    Options = SobolOptions
    sampler = "sobol"
