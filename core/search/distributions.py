"""Distributions of one searched hyperparameter, each a bijection with the unit interval.

Every sampler and the coarse-to-fine zoom work in unit space ``u ∈ [0, 1]``; a distribution maps
``u`` to a parameter value and back. The maps are affine in the distribution's natural coordinate
(the chapter's 7.2): ``r`` for ``log`` (α = 10^r), ``r`` for ``one_minus_log`` (β = 1 − 10^r), the
value itself for ``uniform`` and linear ``int``, ``ln v`` for ``int`` with ``log = true``. Hence an
interval of ``u`` is an interval of ``r``, and uniform sampling of ``u`` is uniform sampling of ``r``.

Discrete distributions (``int``, ``choice``) split the unit interval into equal buckets, so each
integer or choice gets the same mass (for ``int`` with ``log = true``: equal mass per unit of ``ln v``).

A distribution may be *narrowed* (:meth:`Distribution.narrow`) to the span that a set of good values
covers, widened by a margin and clipped to the distribution itself; that is one dimension of a
coarse-to-fine zoom.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Distribution", "Uniform", "Log", "OneMinusLog", "Int", "Choice"]

#: Width in unit space under which a continuous dimension counts as collapsed to a point.
COLLAPSED_WIDTH = 1e-9


def _clip01(u: float) -> float:
    return min(1.0, max(0.0, u))


def _widen(lo: float, hi: float, margin: float, low: float, high: float) -> tuple[float, float]:
    """Widen ``[lo, hi]`` by ``margin`` times its span on each side, clipped to ``[low, high]``."""
    span = hi - lo
    return max(low, lo - margin * span), min(high, hi + margin * span)


class Distribution(ABC):
    """One dimension of a search space. Subclasses are immutable dataclasses."""

    #: The key of this distribution in a study file's ``[space]`` table.
    kind: str = ""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """Map ``u ∈ [0, 1]`` to a parameter value (rounded for ``int``, a choice for ``choice``)."""

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """Map a parameter value to ``u ∈ [0, 1]`` (the centre of its bucket for discrete kinds)."""

    @abstractmethod
    def narrow(self, values: Sequence[Any], margin: float) -> Distribution:
        """The sub-distribution spanned by ``values``, widened by ``margin`` and clipped to ``self``.

        Args:
            values: parameter values of the best trials (at least one), all inside ``self``.
            margin: fraction of the span added on each side (0 keeps the exact span).
        """

    def window(self, low: float, high: float) -> Distribution:
        """The sub-distribution of the values whose unit coordinate lies in ``[low, high]``.

        A ``choice`` is unordered and returns itself; an ``int`` keeps every integer whose bucket meets
        the interval.
        """
        return self

    @abstractmethod
    def region(self) -> list[Any]:
        """JSON-safe description: ``[low, high]`` in parameter units, or the list of choices."""

    @abstractmethod
    def to_table(self) -> dict[str, Any]:
        """The study-file table that describes this distribution (inverse of ``from_table``)."""

    @property
    @abstractmethod
    def collapsed(self) -> bool:
        """True when the distribution holds a single value."""

    @property
    def discrete(self) -> bool:
        """True when the distribution holds finitely many values."""
        return False

    def cardinality(self) -> int | None:
        """Number of distinct values for discrete kinds, else None."""
        return None

    def canonical(self, value: Any) -> Any:
        """A hashable, rounded form of ``value`` used to detect repeated configurations."""
        return value

    def describe(self) -> str:
        """Short human-readable description, e.g. ``log [0.0001, 0.1]``."""
        return f"{self.kind} {self.region()}"


@dataclass(frozen=True)
class _Continuous(Distribution):
    """A continuous distribution that is affine in a coordinate ``r = fwd(value)``."""

    low: float
    high: float

    def _fwd(self, value: float) -> float:
        return value

    def _inv(self, r: float) -> float:
        return r

    @property
    def _r_low(self) -> float:
        return self._fwd(self.low)

    @property
    def _r_high(self) -> float:
        return self._fwd(self.high)

    def from_unit(self, u: float) -> float:
        if self.low == self.high:
            return self.low
        r = self._r_low + _clip01(u) * (self._r_high - self._r_low)
        # Clip to the bounds: 10**log10(x) may differ from x in the last bit.
        return min(self.high, max(self.low, self._inv(r)))

    def to_unit(self, value: Any) -> float:
        if self.high == self.low:
            return 0.5
        return _clip01((self._fwd(float(value)) - self._r_low) / (self._r_high - self._r_low))

    def narrow(self, values: Sequence[Any], margin: float) -> Distribution:
        units = [self.to_unit(v) for v in values]
        lo, hi = _widen(min(units), max(units), margin, 0.0, 1.0)
        return type(self)(self.from_unit(lo), self.from_unit(hi))

    def window(self, low: float, high: float) -> Distribution:
        return type(self)(self.from_unit(low), self.from_unit(high))

    def region(self) -> list[Any]:
        return [self.low, self.high]

    def to_table(self) -> dict[str, Any]:
        return {self.kind: [self.low, self.high]}

    @property
    def collapsed(self) -> bool:
        if self.high == self.low:
            return True
        # Relative to the natural coordinate's magnitude, so that a region of r = [-3, -3 + 1e-12] collapses.
        scale = max(1.0, abs(self._r_low), abs(self._r_high))
        return (self._r_high - self._r_low) <= COLLAPSED_WIDTH * scale

    def canonical(self, value: Any) -> Any:
        # 10 significant digits: a repeat in practice, while distinct samples essentially never coincide.
        return float(f"{float(value):.10g}")


@dataclass(frozen=True)
class Uniform(_Continuous):
    """``value ~ U[low, high]``."""

    kind = "uniform"


@dataclass(frozen=True)
class Log(_Continuous):
    """``value = 10^r`` with ``r ~ U[log10 low, log10 high]`` (equal mass per decade); ``low > 0``."""

    kind = "log"

    def _fwd(self, value: float) -> float:
        return math.log10(value)

    def _inv(self, r: float) -> float:
        return 10.0**r


@dataclass(frozen=True)
class OneMinusLog(_Continuous):
    """``value = 1 − 10^r`` with ``1 − value`` log-uniform; ``0 < low < high < 1``.

    For ``[0.9, 0.999]``, ``r ~ U[-3, -1]``: as much mass in [0.99, 0.999] as in [0.9, 0.99], because
    the averaging window ``1 / (1 − β)`` changes fast as β nears 1.
    """

    kind = "one_minus_log"

    def _fwd(self, value: float) -> float:
        # Increasing in value: u = 0 is low, u = 1 is high.
        return -math.log10(1.0 - value)

    def _inv(self, r: float) -> float:
        return 1.0 - 10.0 ** (-r)


@dataclass(frozen=True)
class Int(Distribution):
    """An integer in ``[low, high]``, each value one equal bucket of ``v`` (or of ``ln v`` with ``log``).

    With ``log = true`` the bucket of ``v`` is ``[ln(v − ½), ln(v + ½)]``, so 32..512 gets as much mass in
    32..64 as in 256..512.
    """

    low: int
    high: int
    log: bool = False
    kind = "int"

    def _fwd(self, x: float) -> float:
        return math.log(x) if self.log else x

    def _inv(self, r: float) -> float:
        return math.exp(r) if self.log else r

    @property
    def _edges(self) -> tuple[float, float]:
        return self._fwd(self.low - 0.5), self._fwd(self.high + 0.5)

    def from_unit(self, u: float) -> int:
        a, b = self._edges
        x = self._inv(a + _clip01(u) * (b - a))
        return int(min(self.high, max(self.low, math.floor(x + 0.5))))

    def to_unit(self, value: Any) -> float:
        a, b = self._edges
        return _clip01((self._fwd(float(value)) - a) / (b - a))

    def narrow(self, values: Sequence[Any], margin: float) -> Distribution:
        rs = [self._fwd(float(v)) for v in values]
        lo, hi = _widen(min(rs), max(rs), margin, self._fwd(self.low), self._fwd(self.high))
        # Round outwards so that the widened span is kept whole.
        new_low = max(self.low, math.floor(self._inv(lo) + 1e-9))
        new_high = min(self.high, math.ceil(self._inv(hi) - 1e-9))
        return Int(new_low, max(new_low, new_high), self.log)

    def window(self, low: float, high: float) -> Distribution:
        return Int(self.from_unit(low), self.from_unit(high), self.log)

    def region(self) -> list[Any]:
        return [self.low, self.high]

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"int": [self.low, self.high]}
        if self.log:
            table["log"] = True
        return table

    @property
    def collapsed(self) -> bool:
        return self.low == self.high

    @property
    def discrete(self) -> bool:
        return True

    def cardinality(self) -> int | None:
        return self.high - self.low + 1

    def canonical(self, value: Any) -> Any:
        return int(value)

    def values(self) -> list[int]:
        """Every integer of the range, in order."""
        return list(range(self.low, self.high + 1))

    def describe(self) -> str:
        return f"int{' (log)' if self.log else ''} [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``choices``, each with mass ``1 / len(choices)``; unordered.

    Narrowing keeps the choices that appear among the given values (in the original order).
    """

    choices: tuple[Any, ...]
    kind = "choice"

    def from_unit(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(k - 1, int(_clip01(u) * k))]

    def to_unit(self, value: Any) -> float:
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def narrow(self, values: Sequence[Any], margin: float) -> Distribution:
        present = set(values)
        return Choice(tuple(c for c in self.choices if c in present))

    def region(self) -> list[Any]:
        return list(self.choices)

    def to_table(self) -> dict[str, Any]:
        return {"choice": list(self.choices)}

    @property
    def collapsed(self) -> bool:
        return len(self.choices) == 1

    @property
    def discrete(self) -> bool:
        return True

    def cardinality(self) -> int | None:
        return len(self.choices)

    def values(self) -> list[Any]:
        """Every choice, in order."""
        return list(self.choices)

    def describe(self) -> str:
        return "choice " + ", ".join(str(c) for c in self.choices)
