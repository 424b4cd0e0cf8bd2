"""The strategy interface: plan the next round from the finished rounds, and report a trial budget.

A strategy object holds what a study file says (space, knobs, seed, fixed keys). Its :meth:`Strategy.plan`
is a pure function of the object and the earlier rounds' results: every process that replays a study
gets the same next round. :meth:`Strategy.next_round` drives the same method for a caller that keeps no
history itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from core.search.objective import Objective
from core.search.space import SearchSpace

__all__ = ["Strategy", "Proposal", "Stop", "Rounds", "History", "score"]

#: ``(params, objective)`` pairs; smaller is better; NaN or None for a diverged or failed trial.
History = Sequence[tuple[Mapping[str, Any], float | None]]

#: Per finished round, in order, its results as a :data:`History`.
Rounds = Sequence[History]


def score(value: float | None) -> float:
    """A smaller-is-better objective as a sortable number: NaN, None and ±inf (diverged, failed) are +inf."""
    return Objective.VAL_LOSS.minimizing(value)


@dataclass(frozen=True)
class Proposal:
    """The next round.

    Attributes:
        region: the region the round samples.
        trials: its configurations (searched keys only, reconciled with the fixed keys), none seen before.
    """

    region: SearchSpace
    trials: list[dict[str, Any]]


@dataclass(frozen=True)
class Stop:
    """The study is finished.

    Attributes:
        reason: ``"complete"`` (a one-round strategy's round is done), ``"rounds"``, ``"collapsed"``,
            ``"patience"`` or ``"exhausted"`` (no unseen configuration left).
    """

    reason: str


class Strategy(ABC):
    """A search strategy: :meth:`plan` (pure) and :attr:`budget`; :meth:`next_round` on top of them.

    Subclasses set :attr:`name` (the study file's ``strategy``) and :attr:`Options` (a frozen dataclass of
    their ``[strategy]`` knobs, whose field defaults are the only place the defaults are written), and
    keep the knobs as :attr:`options`.

    The stateful half: call :meth:`next_round` until it returns an empty list. Each call receives the
    results so far: either the whole history (all rounds, in order) or only the results of the round just
    proposed. The object records rounds itself, so both work.
    """

    #: The strategy's name in a study file.
    name: ClassVar[str]
    #: The dataclass of the strategy's knobs; its field defaults are the knobs' defaults.
    Options: ClassVar[type[Any]]

    options: Any

    def __init__(self, space: SearchSpace, *, seed: int = 0, fixed: Mapping[str, Any] | None = None) -> None:
        self.space = space
        self.seed = int(seed)
        self.fixed = dict(fixed or {})
        self._rounds: list[list[tuple[dict[str, Any], float]]] = []
        self._regions: list[SearchSpace] = []
        self.stop_reason: str | None = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The strategy's knobs and their defaults, in order."""
        return {f.name: f.default for f in fields(cls.Options)}

    @classmethod
    def from_options(
        cls,
        space: SearchSpace,
        options: Mapping[str, Any] | Any = (),
        *,
        seed: int = 0,
        fixed: Mapping[str, Any] | None = None,
    ) -> Self:
        """The strategy for a study: ``options`` is an :attr:`Options` or a mapping of knobs (others default).

        Raises:
            TypeError: a knob this strategy does not have.
        """
        if not isinstance(options, cls.Options):
            options = cls.Options(**dict(options))
        knobs = {f.name: getattr(options, f.name) for f in fields(options)}
        return cls(space, **knobs, seed=seed, fixed=fixed)

    @abstractmethod
    def plan(self, rounds: Rounds) -> Proposal | Stop:
        """Round ``len(rounds)``: a :class:`Proposal`, or :class:`Stop` when the study is finished.

        Pure and deterministic: depends only on this object's knobs, space, seed and fixed keys, and on
        ``rounds``.

        Args:
            rounds: per finished round, its ``(params, objective)`` results: smaller is better, NaN or
                None for diverged or failed (:meth:`core.search.Objective.minimizing` gives such values).
        """

    @property
    @abstractmethod
    def budget(self) -> int:
        """The most trials this strategy will ask for."""

    @property
    def regions(self) -> list[dict[str, list[Any]]]:
        """One entry per proposed round: name -> ``[low, high]`` in parameter units, or allowed choices."""
        return [r.region() for r in self._regions]

    @property
    def region_spaces(self) -> list[SearchSpace]:
        """The proposed rounds' regions as :class:`SearchSpace` objects."""
        return list(self._regions)

    def next_round(self, history: History = ()) -> list[dict[str, Any]]:
        """The next round's configurations, or ``[]`` when the study is finished (see :attr:`stop_reason`).

        Args:
            history: results so far as ``(params, objective)`` pairs, smaller is better, NaN for diverged.
        """
        if self._regions:
            self._rounds.append(self._latest(history))
        if self.stop_reason is not None:
            return []
        step = self.plan(self._rounds)
        if isinstance(step, Stop):
            self.stop_reason = step.reason
            return []
        self._regions.append(step.region)
        return step.trials

    def _latest(self, history: History) -> list[tuple[dict[str, Any], float]]:
        """The results of the round just proposed, from a cumulative or a last-round-only history."""
        pairs = [(dict(p), score(v)) for p, v in history]
        done = sum(len(r) for r in self._rounds)
        earlier = [p for r in self._rounds for p, _ in r]
        if len(pairs) >= done and [p for p, _ in pairs[:done]] == earlier:
            return pairs[done:]
        return pairs
