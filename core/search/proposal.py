"""Turning points of the unit cube into new, distinct, trainable configurations.

Every strategy proposes through :func:`propose`: candidates come from a deterministic stream of
unit-cube points (pseudo-random or scrambled Sobol), are mapped to parameters, passed through
:func:`core.hparams.reconcile` together with the fixed keys, rounded, and dropped when the same
configuration was already evaluated or proposed. The stream then simply continues, so the result is
still a pure function of the seed. A region with fewer unseen configurations than asked for (an
all-discrete space near exhaustion) yields fewer trials, never a repeat.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from core.hparams import reconcile
from core.search.distributions import Choice, Int
from core.search.space import SearchSpace

__all__ = ["propose", "round_seed", "unit_stream", "finalize", "SAMPLERS"]

#: Samplers of the unit cube that a strategy may use within a round.
SAMPLERS = ("random", "sobol")

#: Candidates drawn per wanted trial before a region counts as exhausted.
_ATTEMPTS_PER_TRIAL = 50

#: All-discrete regions up to this many configurations are enumerated instead of sampled.
_ENUMERATE_LIMIT = 20_000


def round_seed(seed: int, round_index: int, purpose: int = 0) -> int:
    """A seed for one round, derived only from the study seed and the round index (never process state)."""
    return int(np.random.SeedSequence([int(seed), int(round_index), int(purpose)]).generate_state(1)[0])


def unit_stream(d: int, sampler: str, seed: int, batch: int) -> Callable[[], np.ndarray]:
    """A function returning the next ``batch`` points of a deterministic stream in ``[0, 1)^d``.

    Returns shape ``(batch, d)`` arrays; successive calls continue the same sequence.
    """
    if sampler == "sobol":
        from scipy.stats import qmc

        engine = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seed))

        def next_sobol() -> np.ndarray:
            with warnings.catch_warnings():
                # Balance properties want powers of two; any prefix is still low-discrepancy.
                warnings.simplefilter("ignore", UserWarning)
                return engine.random(batch)

        return next_sobol
    rng = np.random.default_rng(seed)
    return lambda: rng.random((batch, d))


def finalize(space: SearchSpace, params: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Reconcile a sampled configuration with the fixed keys; keep the searched keys only, rounded."""
    merged = reconcile({**fixed, **params})
    return {k: _plain(space.dims[k].canonical(merged[k])) for k in space.dims}


def _plain(v: Any) -> Any:
    # JSON-safe Python scalars (numpy types never reach the store).
    if isinstance(v, np.generic):
        return v.item()
    return v


def propose(
    space: SearchSpace,
    n: int,
    *,
    seed: int,
    sampler: str = "random",
    fixed: Mapping[str, Any] | None = None,
    seen: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Up to ``n`` distinct configurations in ``space``, none equal to one in ``seen``.

    Args:
        space: the region to sample.
        n: how many configurations are wanted.
        seed: seed of the unit-cube stream.
        sampler: ``"random"`` (independent uniform in unit space) or ``"sobol"`` (scrambled Sobol).
        fixed: the study's fixed keys, used to reconcile each candidate.
        seen: configurations already evaluated (searched keys), compared after reconcile and rounding.

    Returns:
        Parameter dicts of the searched keys; fewer than ``n`` only when the region is exhausted.
    """
    fixed = dict(fixed or {})
    taken = {space.key(p) for p in seen}
    out: list[dict[str, Any]] = []
    if n <= 0:
        return out
    size = space.cardinality()
    if size is not None and size <= _ENUMERATE_LIMIT:
        return _enumerate(space, n, seed, fixed, taken)
    draw = unit_stream(len(space), sampler, seed, max(n, 1))
    budget = _ATTEMPTS_PER_TRIAL * n
    while len(out) < n and budget > 0:
        for u in draw():
            budget -= 1
            cand = finalize(space, space.from_unit(u), fixed)
            key = space.key(cand)
            if key in taken:
                continue
            taken.add(key)
            out.append(cand)
            if len(out) == n or budget <= 0:
                break
    return out


def _enumerate(
    space: SearchSpace, n: int, seed: int, fixed: dict[str, Any], taken: set[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """Every unseen configuration of an all-discrete region, then ``n`` of them in a seeded random order."""
    values = []
    for d in space.dims.values():
        if isinstance(d, (Int, Choice)):
            values.append(d.values())
        else:  # a collapsed continuous dimension: its single value
            values.append([d.from_unit(0.5)])
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for combo in itertools.product(*values):
        cand = finalize(space, dict(zip(space.dims, combo, strict=True)), fixed)
        key = space.key(cand)
        if key not in taken and key not in fresh:
            fresh[key] = cand
    order = np.random.default_rng(seed).permutation(len(fresh))
    pool = list(fresh.values())
    return [pool[i] for i in order[:n]]
