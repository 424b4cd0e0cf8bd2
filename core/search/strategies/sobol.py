"""Sobol search: scrambled quasi-random points, for more even coverage than independent draws."""

from __future__ import annotations

from core.search.strategies.random import Random

__all__ = ["Sobol"]


class Sobol(Random):
    """One round of ``trials`` distinct configurations from a scrambled Sobol sequence (seeded).

    Same arguments as :class:`~core.search.strategies.random.Random`. Budgets that are powers of two keep
    the sequence's balance properties exactly; other budgets take a prefix, still low-discrepancy.
    """

    sampler = "sobol"
