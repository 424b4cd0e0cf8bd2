"""The trust-region controller of coarse-to-fine (version 2): how big the next round's region is.

The region is a box in unit space centred on the best trial of the current *epoch* (the rounds since
the last restart). Its side is ``length`` times a per-dimension shape (see :func:`box`); ``length``
follows the results, round by round, as in TuRBO (Eriksson et al., 2019):

- a round *succeeds* when its best value improves the epoch's best by more than a relative 1e-3;
- after ``success_streak`` successes in a row the side doubles (up to ``max_length``), after
  ``failure_streak`` failures in a row it halves;
- when it falls below ``min_length`` the controller *restarts*: the next round is a fresh wide round
  over the whole space, a new epoch begins, and the side is back to ``init_length``.

So the region moves (its centre is the best trial so far), grows again after improving rounds and
never stays locked on a basin that stopped paying off. :meth:`CoarseToFine.replay
<core.search.strategies.coarse_to_fine.CoarseToFine.replay>` recomputes the state from the rounds' results
alone (folding :func:`advance` over them), which keeps planning a pure function of the study's history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Controller", "RegionState", "advance", "box", "spread_shape", "lengthscale_shape"]


@dataclass(frozen=True)
class Controller:
    """The controller's constants.

    Attributes:
        init_length: the side of a fresh region, in unit-cube sides.
        min_length: below this side the controller restarts.
        max_length: the largest side (above 1 the box is clipped to the cube in most dimensions).
        success_streak: successes in a row that double the side.
        failure_streak: failures in a row that halve the side.
    """

    init_length: float = 0.8
    min_length: float = 0.5**7
    max_length: float = 1.6
    success_streak: int = 3
    failure_streak: int = 2

    @classmethod
    def for_rounds(cls, trials_per_round: int, dims: int, **overrides: float) -> Controller:
        """TuRBO's failure streak for a round size: ⌈max(4, d) / q⌉ rounds, so about max(4, d) trials.

        Example:
            >>> Controller.for_rounds(4, 7).failure_streak, Controller.for_rounds(1, 7).failure_streak
            (2, 7)
        """
        streak = math.ceil(max(4.0, float(dims)) / max(1, trials_per_round))
        return cls(**{"failure_streak": max(1, streak), **overrides})


@dataclass(frozen=True)
class RegionState:
    """The controller's state before a round.

    Attributes:
        length: the region's side.
        epoch: index of the round that started the current epoch.
        best: the epoch's best value so far (inf when none finished).
        restart: True when this round is a fresh wide round (the side had fallen below the minimum).
        restarts: how many restarts so far.
        successes, failures: the current streaks.
        rounds: how many rounds the state has seen.
    """

    length: float
    epoch: int = 0
    best: float = math.inf
    restart: bool = False
    restarts: int = 0
    successes: int = 0
    failures: int = 0
    rounds: int = 0


def advance(state: RegionState, values: Sequence[float], wide: bool, controller: Controller) -> RegionState:
    """The state after a round with these smaller-is-better ``values`` (inf for failed trials).

    A ``wide`` round (start-up or restart) sets the epoch's best but is neither a success nor a
    failure of the region.

    Example:
        >>> c = Controller(success_streak=1, failure_streak=1, min_length=0.3)
        >>> s = advance(RegionState(c.init_length), [5.0], True, c)
        >>> advance(s, [4.0], False, c).length   # one success doubles 0.8
        1.6
        >>> s = advance(advance(s, [6.0], False, c), [6.0], False, c)  # 0.8 -> 0.4 -> 0.2 < 0.3
        >>> s.restart, s.length, s.epoch, s.restarts
        (True, 0.8, 3, 1)
    """
    round_best = min((v for v in values if math.isfinite(v)), default=math.inf)
    length, successes, failures = state.length, state.successes, state.failures
    if not wide:
        if round_best < state.best - 1e-3 * abs(state.best):
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
        if successes >= controller.success_streak:
            length, successes = min(2.0 * length, controller.max_length), 0
        elif failures >= controller.failure_streak:
            length, failures = length / 2.0, 0
    if length < controller.min_length:
        return RegionState(
            controller.init_length,
            state.rounds + 1,
            math.inf,
            True,
            state.restarts + 1,
            rounds=state.rounds + 1,
        )
    best = min(state.best, round_best)
    return RegionState(
        length, state.epoch, best, False, state.restarts, successes, failures, state.rounds + 1
    )


def box(
    centre: np.ndarray, length: float, shape: np.ndarray, wide: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The region ``[low, high]`` per dimension: side ``length · shape_j`` centred on ``centre``, in [0, 1].

    Args:
        centre: the best trial in unit coordinates, shape ``(d,)``.
        length: the controller's side.
        shape: per-dimension factors with geometric mean 1 (see ``spread_shape``), shape ``(d,)``.
        wide: dimensions kept whole (``narrow = "important"`` leaves the unimportant ones wide).

    Example:
        >>> lo, hi = box(np.array([0.5, 0.9]), 0.4, np.array([1.0, 1.0]))
        >>> lo.round(2).tolist(), hi.round(2).tolist()
        ([0.3, 0.7], [0.7, 1.0])
    """
    half = 0.5 * length * shape
    low = np.clip(centre - half, 0.0, 1.0)
    high = np.clip(centre + half, 0.0, 1.0)
    if wide is not None:
        low, high = np.where(wide, 0.0, low), np.where(wide, 1.0, high)
    return low, high


def spread_shape(good: np.ndarray, floor: float = 0.05, clip: float = 4.0) -> np.ndarray:
    """Per-dimension shape from the spread of the good trials: their standard deviation per dimension,
    floored, scaled to geometric mean 1 and clipped to ``[1/clip, clip]``.

    Dimensions along which good trials agree get a narrower side than dimensions along which they
    scatter (those matter less).

    Args:
        good: the good trials in unit coordinates, shape ``(n, d)``.

    Example:
        >>> g = np.array([[0.1, 0.5], [0.2, 0.9], [0.15, 0.1]])
        >>> s = spread_shape(g)
        >>> bool(s[0] < 1 < s[1]), round(float(np.prod(s)), 6)
        (True, 1.0)
    """
    if good.shape[1] == 0:
        return np.ones(0)
    sd = np.maximum(good.std(axis=0), floor) if len(good) > 1 else np.ones(good.shape[1])
    shape = sd / math.exp(float(np.mean(np.log(sd))))
    shape = np.clip(shape, 1.0 / clip, clip)
    return shape / math.exp(float(np.mean(np.log(shape))))


def lengthscale_shape(rho: np.ndarray, clip: float = 4.0) -> np.ndarray:
    """Per-dimension shape from a GP's inverse squared length-scales ``rho`` (TuRBO's): a long
    length-scale (the function changes slowly along the dimension) gives a wide side; geometric mean 1,
    clipped to ``[1/clip, clip]``."""
    if len(rho) == 0:
        return np.ones(0)
    ls = 1.0 / np.sqrt(rho)
    shape = np.clip(ls / math.exp(float(np.mean(np.log(ls)))), 1.0 / clip, clip)
    return shape / math.exp(float(np.mean(np.log(shape))))
