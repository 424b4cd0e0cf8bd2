"""Coarse-to-fine search (the chapter's 7.1.2), done as a controller: a trust region that moves and
resizes with the results, and a model that chooses the trials inside it.

Version 2 (the default) plans round ``k`` from the results of rounds ``0..k-1``:

1. **Start-up.** Until ``startup`` trials exist, rounds sample the whole space (the ``sampler``'s
   stream from the study seed, so they are random search's first trials).
2. **The region.** A box in unit space (an interval of ``r`` for a learning rate) centred on the best
   trial of the current epoch. Its side is a length times a per-dimension shape: the spread of the
   good trials (the best ``top`` fraction, at least ``keep_top`` of them), so dimensions on which the
   good trials agree are narrower. The length follows the rounds (:mod:`.trust_region`): doubled after
   three improving rounds in a row, halved after about ``max(4, d)`` trials' worth of rounds without
   improvement, and when it falls below its minimum the next round is a fresh wide round over the whole
   space (a restart), after which the region may settle elsewhere. A ``choice`` is never narrowed:
   each value keeps a probability, smoothed and weighted by how often it appears among the good trials.
3. **The trials.** Candidates are drawn in the region (scrambled Sobol points, choices by their
   probabilities), and a Gaussian process fitted to every result so far (:mod:`core.search.models`)
   picks the round's trials among them by Thompson sampling: one posterior sample per pick, so a
   round spreads where the model is unsure. A configuration already evaluated or picked is never
   proposed again.

Every random draw is seeded from the study seed and the round index, and the controller's state is
replayed from the results, so any process plans the same round. Version 2 never stops early on its
own (it restarts instead), except by ``patience`` or when no unseen configuration is left.

``version = 1`` keeps the first design (:mod:`.zoom`: nested zooms onto the hull of the ``keep_top``
best trials widened by ``margin``, uniform draws inside); ``keep_top`` and ``margin`` keep that meaning
there. In version 2 ``keep_top`` is the smallest good set and ``margin`` is not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.search.distributions import Choice, Int
from core.search.models import GaussianProcess, categorical, encode, fit_gp, targets, thompson
from core.search.models.acquisition import expected_improvement
from core.search.proposal import finalize, propose, round_seed, unit_stream
from core.search.space import SearchSpace
from core.search.strategies.base import Proposal, Rounds, Stop, Strategy, score
from core.search.strategies.trust_region import (
    Controller,
    RegionState,
    advance,
    box,
    lengthscale_shape,
    spread_shape,
)
from core.search.strategies.zoom import important_dims, plan_zoom

__all__ = ["CoarseToFine", "CoarseToFineOptions", "C2FOptions", "NARROW", "VERSIONS", "Tuning"]

#: How coarse-to-fine chooses the dimensions to narrow.
NARROW = ("all", "important")
#: The designs a study may ask for: 2 (trust region and model, the default) or 1 (nested zoom).
VERSIONS = (1, 2)

#: Purposes of the per-round seeds (the third element of :func:`round_seed`).
_CANDIDATES, _IMPORTANCE, _PICKS = 2, 1, 3


@dataclass(frozen=True)
class CoarseToFineOptions:
    """The ``[strategy]`` knobs of coarse-to-fine.

    Attributes:
        rounds: the most rounds.
        trials_per_round: configurations per round (about the number of workers: a round is a barrier).
        keep_top: version 2: the fewest trials in the good set; version 1: how many of the best
            finished trials so far define the next region.
        margin: version 1 only: fraction of the top trials' span added on each side, in unit space.
        patience: stop after this many rounds in a row without improvement (None: never).
        narrow: narrow ``"all"`` dimensions, or only the ``"important"`` ones (the others stay whole).
        sampler: the unit-cube stream of wide rounds (and of version 1's rounds), ``"random"`` or
            ``"sobol"``.
        version: 2 (trust region and model) or 1 (nested zoom).
        startup: version 2: trials over the whole space before the model chooses (None: 8, at least
            one round).
        top: version 2: the good set's share of the finished trials.
    """

    rounds: int = 12
    trials_per_round: int = 4
    keep_top: int = 4
    margin: float = 0.25
    patience: int | None = None
    narrow: str = "all"
    sampler: str = "random"
    version: int = 2
    startup: int | None = None
    top: float = 0.2


#: The former name of :class:`CoarseToFineOptions`.
C2FOptions = CoarseToFineOptions

_D = CoarseToFineOptions  # the constructor's defaults are the dataclass's


@dataclass(frozen=True)
class Tuning:
    """Version 2's inner constants: not study-file knobs, but the alternatives that were measured while
    choosing the defaults, kept so that the choice can be measured again (pass ``tuning=``).

    Attributes:
        default_startup: start-up trials when ``startup`` is None.
        candidates: candidates drawn in the region per round.
        acquisition: ``"thompson"`` or ``"ei"`` (expected improvement with pending picks believed).
        shape: the region's per-dimension shape: ``"spread"`` (of the good trials), ``"lengthscale"`` (the
            GP's, as TuRBO does), ``"both"`` (their geometric mean), anything else a cube.
        shape_clip: the shape's factors are clipped to ``[1/shape_clip, shape_clip]``.
        transform: model targets: ``"rank"``, ``"standard"`` or ``"clipQ"`` (see
            :func:`core.search.models.targets`).
        max_model_trials: the GP sees at most this many trials (those nearest the region's centre).
        restart_trials: trials of a restart's wide rounds (None: one round, at least 4 trials).
        controller: overrides of :class:`Controller`'s constants.
    """

    default_startup: int = 8
    candidates: int = 512
    acquisition: str = "thompson"
    shape: str = "spread"
    shape_clip: float = 4.0
    transform: str = "rank"
    max_model_trials: int = 300
    restart_trials: int | None = None
    controller: dict[str, float] = field(default_factory=dict)


class CoarseToFine(Strategy):
    """Coarse-to-fine rounds; see the module docstring.

    Args:
        space: the whole search space (the wide rounds' region).
        rounds, trials_per_round, keep_top, margin, patience, narrow, sampler, version, startup, top:
            the knobs (:class:`CoarseToFineOptions`).
        seed: the study seed; round ``k``'s draws derive from it and ``k``.
        fixed: the study's fixed keys, for reconciling configurations.
        tuning: version 2's inner constants (:class:`Tuning`).

    Example:
        >>> from core.search import SearchSpace, CoarseToFine
        >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-1]}})
        >>> c2f = CoarseToFine(space, rounds=4, trials_per_round=4, seed=0)
        >>> history = []
        >>> while trials := c2f.next_round(history):
        ...     history += [(p, abs(math.log10(p["learning_rate"]) + 2.5)) for p in trials]
        >>> len(history), len(c2f.regions), c2f.stop_reason
        (16, 4, 'rounds')
        >>> best = min(history, key=lambda pv: pv[1])[0]["learning_rate"]
        >>> lo, hi = c2f.regions[-1]["learning_rate"]
        >>> bool(lo <= 10**-2.5 <= hi < 1e-1), bool(abs(math.log10(best) + 2.5) < 0.1)
        (True, True)
        >>> c2f.plan([]).trials == [p for p, _ in history[:4]]  # the same pure planning, from results
        True
    """

    name = "coarse-to-fine"
    Options = CoarseToFineOptions

    def __init__(
        self,
        space: SearchSpace,
        *,
        rounds: int = _D.rounds,
        trials_per_round: int = _D.trials_per_round,
        keep_top: int = _D.keep_top,
        margin: float = _D.margin,
        seed: int = 0,
        patience: int | None = _D.patience,
        narrow: str = _D.narrow,
        sampler: str = _D.sampler,
        version: int = _D.version,
        startup: int | None = _D.startup,
        top: float = _D.top,
        fixed: Mapping[str, Any] | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        super().__init__(space, seed=seed, fixed=fixed)
        self.options = CoarseToFineOptions(
            rounds, trials_per_round, keep_top, margin, patience, narrow, sampler, version, startup, top
        )
        self.tuning = tuning or Tuning()

    @property
    def budget(self) -> int:
        return self.options.rounds * self.options.trials_per_round

    @property
    def startup_trials(self) -> int:
        """Trials over the whole space before the model chooses (at least one round)."""
        o = self.options
        wanted = self.tuning.default_startup if o.startup is None else o.startup
        return max(wanted, o.trials_per_round)

    @property
    def controller(self) -> Controller:
        """The trust-region constants for this round size and space."""
        numeric = int((~categorical(self.space)).sum())
        return Controller.for_rounds(self.options.trials_per_round, numeric, **self.tuning.controller)

    def plan(self, rounds: Rounds) -> Proposal | Stop:
        """Round ``len(rounds)``: a :class:`Proposal`, or :class:`Stop` with ``"rounds"``, ``"patience"``,
        ``"exhausted"`` (or version 1's ``"collapsed"``)."""
        o = self.options
        if len(rounds) >= o.rounds:
            return Stop("rounds")
        if o.version == 1:
            return plan_zoom(self, rounds, self._out_of_patience(rounds))
        if self._out_of_patience(rounds):
            return Stop("patience")
        state, wide = self.replay(rounds)
        return self._plan_round(rounds, state, wide)

    def _out_of_patience(self, rounds: Rounds) -> bool:
        patience, k = self.options.patience, len(rounds)
        if patience is None or k <= patience:
            return False
        stale = 0
        best = min((score(v) for _, v in rounds[0]), default=math.inf)
        for j in range(1, k):
            round_best = min((score(v) for _, v in rounds[j]), default=math.inf)
            if round_best < best:
                best, stale = round_best, 0
            else:
                stale += 1
        return stale >= patience

    # --- version 2 ------------------------------------------------------------------------------------

    def replay(self, rounds: Rounds) -> tuple[RegionState, bool]:
        """The controller's state before round ``len(rounds)``, and whether that round is a wide one."""
        controller = self.controller
        state = RegionState(controller.init_length)
        done = 0
        for j, results in enumerate(rounds):
            values = [score(v) for _, v in results]
            state = advance(state, values, self._wide(state, rounds, j, done), controller)
            done += len(results)
        return state, self._wide(state, rounds, len(rounds), done)

    def _wide(self, state: RegionState, rounds: Rounds, k: int, done: int) -> bool:
        """Round ``k`` samples the whole space: start-up, a restart, or nothing finished yet."""
        if done < self.startup_trials:
            return True
        in_epoch = [score(v) for r in rounds[state.epoch : k] for _, v in r]
        if state.restarts and len(in_epoch) < self._restart_trials:
            return True
        finite = [v for r in rounds[:k] for _, v in r if math.isfinite(score(v))]
        return not finite

    @property
    def _restart_trials(self) -> int:
        t = self.tuning.restart_trials
        return max(self.options.trials_per_round, 4) if t is None else max(1, t)

    def _plan_round(self, rounds: Rounds, state: RegionState, wide: bool) -> Proposal | Stop:
        o, space = self.options, self.space
        k = len(rounds)
        history = [(dict(p), score(v)) for r in rounds for p, v in r]
        taken = {space.key(p) for p, _ in history}
        if wide:
            trials = self._stream(o.trials_per_round, taken)
            return Proposal(space, trials) if trials else Stop("exhausted")
        epoch = [(p, v) for r in rounds[state.epoch :] for p, v in ((dict(p), score(v)) for p, v in r)]
        pool = [pv for pv in epoch if math.isfinite(pv[1])] or [pv for pv in history if math.isfinite(pv[1])]
        ranked = sorted(pool, key=lambda pv: pv[1])
        n_good = min(len(ranked), max(o.keep_top, math.ceil(o.top * len(ranked))))
        good = ranked[:n_good]
        cat = categorical(space)
        centre = space.to_unit(ranked[0][0])
        good_units = np.array([space.to_unit(p) for p, _ in good])
        with _one_thread():
            gp = self._model(history, centre)
            shape = np.ones(len(space))
            if self.tuning.shape == "spread":
                shape[~cat] = spread_shape(good_units[:, ~cat], clip=self.tuning.shape_clip)
            elif self.tuning.shape == "lengthscale":
                shape[~cat] = lengthscale_shape(gp.rho[~cat], clip=self.tuning.shape_clip)
            elif self.tuning.shape == "both":
                a = spread_shape(good_units[:, ~cat], clip=self.tuning.shape_clip)
                b = lengthscale_shape(gp.rho[~cat], clip=self.tuning.shape_clip)
                shape[~cat] = np.sqrt(a * b)
            keep_wide = cat.copy()
            if o.narrow == "important":
                chosen = set(important_dims(space, history, round_seed(self.seed, k, _IMPORTANCE)))
                keep_wide |= np.array([n not in chosen for n in space.names])
            low, high = box(centre, state.length, shape, keep_wide)
            low, high = _at_least_neighbours(space, centre, low, high)
            region = space.window(low, high)
            probs = _choice_probs(space, [p for p, _ in good])
            cands, units = self._candidates(low, high, probs, taken, round_seed(self.seed, k, _CANDIDATES))
            picks = self._pick(gp, units, round_seed(self.seed, k, _PICKS))
        trials = [cands[i] for i in picks]
        if len(trials) < o.trials_per_round:  # a nearly exhausted region: fill from the whole space
            taken |= {space.key(t) for t in trials}
            more = self._stream(o.trials_per_round - len(trials), taken)
            if more:  # the round then searched the whole space, and says so
                trials, region = trials + more, space
        return Proposal(region, trials) if trials else Stop("exhausted")

    def _stream(self, n: int, taken: set[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """The first ``n`` unseen configurations of the study's whole-space stream (random search's)."""
        space = self.space
        if space.cardinality() is not None:  # all discrete: enumerate in a seeded order
            return propose(
                space, n, seed=round_seed(self.seed, 0), sampler=self.options.sampler, fixed=self.fixed,
                seen=[dict(zip(space.names, key, strict=True)) for key in taken],
            )
        draw = unit_stream(len(space), self.options.sampler, round_seed(self.seed, 0), 64)
        out: list[dict[str, Any]] = []
        seen = set(taken)
        for _ in range(max(1, (len(taken) + 50 * n) // 64 + 1)):
            for u in draw():
                cand = finalize(space, space.from_unit(u), self.fixed)
                key = space.key(cand)
                if key not in seen:
                    seen.add(key)
                    out.append(cand)
                    if len(out) == n:
                        return out
        return out

    def _candidates(
        self,
        low: np.ndarray,
        high: np.ndarray,
        probs: dict[int, np.ndarray],
        taken: set[tuple[Any, ...]],
        seed: int,
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Distinct unseen configurations in the box (choices drawn by ``probs``) and their model inputs."""
        space = self.space
        u = unit_stream(len(space), "sobol", seed, self.tuning.candidates)()
        u = low + (high - low) * u
        for j, p in probs.items():
            cdf = np.cumsum(p)
            idx = np.minimum(np.searchsorted(cdf, u[:, j] * cdf[-1], side="right"), len(p) - 1)
            u[:, j] = (idx + 0.5) / len(p)
        out: list[dict[str, Any]] = []
        seen = set(taken)
        for row in u:
            cand = finalize(space, space.from_unit(row), self.fixed)
            key = space.key(cand)
            if key not in seen:
                seen.add(key)
                out.append(cand)
        units = np.array([encode(space, c) for c in out]).reshape(len(out), len(space))
        return out, units

    def _model(self, history: list[tuple[dict[str, Any], float]], centre: np.ndarray) -> GaussianProcess:
        """The GP fitted to the results (at most ``max_model_trials``: those nearest the centre)."""
        space, t = self.space, self.tuning
        cat = categorical(space)
        x = np.array([encode(space, p) for p, _ in history])
        values = [v for _, v in history]
        if len(history) > t.max_model_trials:  # a GP is cubic in its trials: keep the local ones
            gap = np.where(cat, 0.0, np.array([space.to_unit(p) for p, _ in history]) - centre)
            near = np.sort(np.argsort((gap**2).sum(axis=1), kind="stable")[: t.max_model_trials])
            x, values = x[near], [values[i] for i in near]
        return fit_gp(x, targets(values, t.transform), cat)

    def _pick(self, gp: GaussianProcess, units: np.ndarray, seed: int) -> list[int]:
        """The round's picks among the candidates (indices), by the model."""
        if not len(units):
            return []
        n = min(self.options.trials_per_round, len(units))
        everything = np.arange(len(units))
        if self.tuning.acquisition == "ei":
            return expected_improvement(gp, units, [everything] * n)
        return thompson(gp, units, [everything] * n, np.random.default_rng(seed))


def _at_least_neighbours(
    space: SearchSpace, centre: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Widen an ``int`` dimension's interval to hold the centre's neighbouring integers: a region
    narrower than one integer step cannot move any more along that dimension."""
    low, high = low.copy(), high.copy()
    for j, d in enumerate(space.dims.values()):
        if isinstance(d, Int) and d.high > d.low:
            v = d.from_unit(float(centre[j]))
            low[j] = min(low[j], d.to_unit(max(d.low, v - 1)))
            high[j] = max(high[j], d.to_unit(min(d.high, v + 1)))
    return low, high


def _choice_probs(space: SearchSpace, good: list[Mapping[str, Any]]) -> dict[int, np.ndarray]:
    """Per choice dimension (by index), each value's probability: one pseudo-trial spread evenly over
    the values, plus one count per good trial holding it, so no value is ever dropped."""
    out: dict[int, np.ndarray] = {}
    for j, (k, d) in enumerate(space.dims.items()):
        if isinstance(d, Choice):
            counts = np.full(len(d.choices), 1.0 / len(d.choices))
            for p in good:
                counts[d.choices.index(p[k])] += 1.0
            out[j] = counts / counts.sum()
    return out


class _one_thread:
    """Limit BLAS to one thread while the model works: planning runs beside training processes, and a
    few small matrices gain nothing from threads (and lose a lot on a busy machine)."""

    def __enter__(self) -> None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - it ships with scikit-learn
            self._limits = None
            return
        self._limits = threadpool_limits(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
