"""How much each searched hyperparameter matters, measured from a study's own results.

The chapter's 7.1.1 ranks hyperparameters by importance (learning rate first, Adam's β1, β2, ε last) and
warns that the order depends on the problem; this module measures it. The estimator is the first-order
functional ANOVA (Hutter, Hoos & Leyton-Brown, ICML 2014) of a random-forest surrogate:

1. Map each trial to the unit cube (so a learning rate counts in ``r = log10 α``) and give diverged or
   failed trials (NaN) a value worse than the worst finished trial by the finished trials' range (so
   "this setting diverges" is an effect the forest can see).
2. Fit a random forest ``f`` on (unit point, objective), the objective as is (as fANOVA does: a
   rank transform would inflate tiny effects inside groups separated by a large one).
3. Under the uniform measure on the unit cube (the one every strategy samples from), the main effect of
   dimension ``i`` is ``f_i(x_i) = E[f(x) | x_i]``, estimated by averaging ``f`` over a Monte Carlo
   sample of the other dimensions, on a grid of ``x_i`` values. Its variance over ``x_i``, divided by the
   variance of ``f`` itself, is dimension ``i``'s share: a number in ``[0, 1]``. Shares sum to at most 1;
   the rest is interaction (and Monte Carlo noise, which can push a sum a little above 1, then it is
   scaled back to 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import BadInput
from core.search.objective import Objective
from core.search.space import SearchSpace

__all__ = ["importance", "MIN_TRIALS"]

#: Fewest finished trials from which importance is estimated.
MIN_TRIALS = 4

#: Points of the main-effect grid per dimension, and Monte Carlo points for the other dimensions.
_GRID, _MC = 32, 256


def _snap(space: SearchSpace, u: np.ndarray) -> np.ndarray:
    """Snap unit points (shape ``(m, d)``) of discrete dimensions to their bucket centres."""
    out = u.copy()
    for j, d in enumerate(space.dims.values()):
        if d.discrete:
            out[:, j] = [d.to_unit(d.from_unit(x)) for x in u[:, j]]
    return out


def importance(
    spec_or_space: Any,
    params: Sequence[Mapping[str, Any]],
    objectives: Sequence[float],
    *,
    maximize: bool | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Each searched hyperparameter's share of the objective's variance.

    Args:
        spec_or_space: a :class:`~core.search.study.StudySpec` (its space and objective direction are
            used) or a :class:`SearchSpace` (then smaller is better unless ``maximize``).
        params: the trials' searched values, one dict per trial.
        objectives: the trials' objective values; NaN or None for diverged or failed trials (worst).
        maximize: override the direction (only matters for where NaNs are ranked).
        seed: seed of the forest and of the Monte Carlo sample.

    Returns:
        name -> share in ``[0, 1]``; the shares sum to at most 1. All zero when every trial scored the same.

    Raises:
        BadInput: fewer than :data:`MIN_TRIALS` trials, or params and objectives of different lengths.
    """
    from sklearn.ensemble import RandomForestRegressor

    space: SearchSpace = getattr(spec_or_space, "space", spec_or_space)
    objective = Objective(getattr(spec_or_space, "objective", Objective.VAL_LOSS))
    if maximize is not None and maximize != objective.maximize:
        objective = objective.other
    if len(params) != len(objectives):
        raise BadInput("objectives", len(objectives), f"one per trial ({len(params)} trials)")
    y = np.array([objective.minimizing(v) for v in objectives], dtype=float)  # diverged or failed: +inf
    finite = np.isfinite(y)
    if finite.sum() < MIN_TRIALS:
        raise BadInput("trials", int(finite.sum()), f"importance needs at least {MIN_TRIALS} finished trials")
    worst, spread = float(np.max(y[finite])), float(np.ptp(y[finite]))
    y[~finite] = worst + (spread if spread > 0 else max(abs(worst), 1.0))
    if np.ptp(y) == 0:
        return {k: 0.0 for k in space.names}
    target = y
    X = np.stack([space.to_unit(p) for p in params])
    d = len(space)
    forest = RandomForestRegressor(n_estimators=128, min_samples_leaf=2, random_state=seed, n_jobs=1)
    forest.fit(X, target)

    rng = np.random.default_rng(seed)
    base = _snap(space, rng.random((_MC, d)))
    grid = (np.arange(_GRID) + 0.5) / _GRID
    blocks = [base]
    for j in range(d):
        col = _snap(space, np.tile(grid[:, None], (1, d)))[:, j]
        for g in col:
            block = base.copy()
            block[:, j] = g
            blocks.append(block)
    pred = forest.predict(np.concatenate(blocks))
    total = float(np.var(pred[:_MC]))
    if total <= 0:
        return {k: 0.0 for k in space.names}
    effects = pred[_MC:].reshape(d, _GRID, _MC).mean(axis=2)  # f_i on the grid, shape (d, grid)
    shares = np.clip(effects.var(axis=1) / total, 0.0, 1.0)
    if shares.sum() > 1.0:
        shares = shares / shares.sum()
    return {k: float(s) for k, s in zip(space.names, shares, strict=True)}
