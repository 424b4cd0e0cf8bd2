"""A search space: named distributions over hyperparameters, parsed from a study file's ``[space]``.

Points move between parameter units and the unit cube ``[0, 1]^d`` (one axis per dimension, in the
order given); samplers draw in the cube, coarse-to-fine narrows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import BadInput
from core.hparams import HPARAMS
from core.search.distributions import Choice, Distribution, Int, Log, OneMinusLog, Uniform

__all__ = ["SearchSpace", "parse_distribution", "DISTRIBUTIONS"]

#: The distribution kinds a ``[space]`` entry may use.
DISTRIBUTIONS = ("uniform", "log", "one_minus_log", "int", "choice")

#: Keys that a search may not vary (``seed`` is derived per trial, or fixed).
UNSEARCHABLE = ("seed",)

_FORMS = (
    "{ uniform = [low, high] }, { log = [low, high] }, { one_minus_log = [low, high] }, "
    "{ int = [low, high] } (optionally log = true) or { choice = [a, b, ...] }"
)


def _pair(field_name: str, raw: Any, kind: str) -> tuple[Any, Any]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise BadInput(field_name, raw, f"{kind} takes a list of two numbers [low, high]")
    for x in raw:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise BadInput(field_name, raw, f"{kind} takes a list of two finite numbers [low, high]")
    if raw[0] >= raw[1]:
        raise BadInput(field_name, raw, f"{kind} needs low < high")
    return raw[0], raw[1]


def _check_value(key: str, field_name: str, value: Any) -> Any:
    try:
        return HPARAMS[key].check(value)
    except BadInput as exc:
        raise BadInput(field_name, value, exc.allowed) from None


def parse_distribution(key: str, raw: Any) -> Distribution:
    """Parse one ``[space]`` entry for hyperparameter ``key``.

    Raises:
        BadInput: with field ``"[space] key"``, naming what is allowed.
    """
    where = f"[space] {key}"
    hp = HPARAMS.get(key)
    if hp is None:
        raise BadInput(where, key, "expected a hyperparameter, one of " + ", ".join(HPARAMS))
    if key in UNSEARCHABLE:
        raise BadInput(where, key, "the seed is derived per trial; it may be set in [fixed] but not searched")
    if not isinstance(raw, Mapping):
        raise BadInput(where, raw, f"expected a table: {_FORMS}")
    kinds = [k for k in raw if k in DISTRIBUTIONS]
    extra = [k for k in raw if k not in DISTRIBUTIONS]
    # `log = true` is an option of `int`, not a distribution, when both are present.
    if "int" in kinds and "log" in kinds and isinstance(raw["log"], bool):
        kinds.remove("log")
        extra.append("log")
    if len(kinds) != 1:
        shown = ", ".join(raw) or "nothing"
        raise BadInput(where, shown, f"expected exactly one distribution, one of {', '.join(DISTRIBUTIONS)}")
    kind = kinds[0]
    allowed_extra = ["log"] if kind == "int" else []
    for k in extra:
        if k not in allowed_extra:
            raise BadInput(
                where,
                k,
                f"unknown distribution or option; expected one of {', '.join(DISTRIBUTIONS)}"
                + (" (and log = true with int)" if kind == "int" else ""),
            )
    value = raw[kind]
    fits = {
        float: ("uniform", "log", "one_minus_log", "choice"),
        int: ("int", "choice"),
        str: ("choice",),
    }[hp.kind]
    if kind not in fits:
        raise BadInput(
            where, kind, f"{key} is {hp.allowed()}; its distribution must be one of {', '.join(fits)}"
        )

    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise BadInput(where, value, f"choice takes a non-empty list of values: {hp.allowed()}")
        checked = tuple(_check_value(key, where, v) for v in value)
        if len(set(checked)) != len(checked):
            raise BadInput(where, value, "choice values must be distinct")
        return Choice(checked)
    if kind == "int":
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise BadInput(where, log, "log takes true or false")
        low, high = _pair(where, value, "int")
        if not (float(low).is_integer() and float(high).is_integer()):
            raise BadInput(where, value, "int takes two integers [low, high]")
        low, high = _check_value(key, where, low), _check_value(key, where, high)
        if log and low < 1:
            raise BadInput(where, value, "int with log = true needs low >= 1")
        return Int(int(low), int(high), log)

    low, high = _pair(where, value, kind)
    if kind == "log" and low <= 0:
        raise BadInput(where, value, "log needs 0 < low < high")
    if kind == "one_minus_log" and not (low > 0 and high < 1):
        raise BadInput(where, value, "one_minus_log needs 0 < low < high < 1")
    low, high = float(_check_value(key, where, low)), float(_check_value(key, where, high))
    return {"uniform": Uniform, "log": Log, "one_minus_log": OneMinusLog}[kind](low, high)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered mapping from hyperparameter name to :class:`Distribution`.

    Example:
        >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-1]}})
        >>> all(1e-4 <= p["learning_rate"] <= 1e-1 for p in space.sample(100, seed=0))
        True
        >>> space.region()
        {'learning_rate': [0.0001, 0.1]}
    """

    dims: dict[str, Distribution] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> SearchSpace:
        """Parse a ``[space]`` table. Raises :class:`BadInput` naming ``"[space] key"``."""
        if not isinstance(table, Mapping) or not table:
            raise BadInput("[space]", table, "expected at least one searched hyperparameter")
        return cls({key: parse_distribution(key, raw) for key, raw in table.items()})

    @property
    def names(self) -> list[str]:
        """Dimension names, in order."""
        return list(self.dims)

    def __len__(self) -> int:
        return len(self.dims)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The ``[space]`` table describing this space (round-trips through :meth:`from_dict`)."""
        return {k: d.to_table() for k, d in self.dims.items()}

    def region(self) -> dict[str, list[Any]]:
        """JSON-safe region: name -> ``[low, high]`` in parameter units, or the allowed choices."""
        return {k: d.region() for k, d in self.dims.items()}

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """Map a point of the unit cube (shape ``(d,)``) to parameters."""
        return {k: d.from_unit(float(x)) for (k, d), x in zip(self.dims.items(), u, strict=True)}

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map parameters to the unit cube. Returns shape ``(d,)``."""
        return np.array([d.to_unit(params[k]) for k, d in self.dims.items()], dtype=float)

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` independent uniform draws in unit space (log-uniform for ``log``); deterministic."""
        rng = np.random.default_rng(seed)
        return [self.from_unit(u) for u in rng.random((n, len(self.dims)))]

    def narrow(
        self, top: Sequence[Mapping[str, Any]], margin: float, only: Iterable[str] | None = None
    ) -> SearchSpace:
        """The coarse-to-fine child region spanned by ``top``, widened by ``margin``, clipped to ``self``.

        Args:
            top: parameters of the best trials (at least one), all inside this space.
            margin: fraction of each dimension's span added on each side, in unit space.
            only: narrow these dimensions and keep the others whole (None: narrow all).
        """
        keep = set(self.dims) if only is None else set(only)
        return SearchSpace(
            {k: d.narrow([p[k] for p in top], margin) if k in keep else d for k, d in self.dims.items()}
        )

    def window(self, low: Sequence[float], high: Sequence[float]) -> SearchSpace:
        """The box ``[low, high]`` of the unit cube (shape ``(d,)`` each) as a region in parameter units.

        Every point of the box maps (:meth:`from_unit`) into the region; a ``choice`` stays whole.

        Example:
            >>> space = SearchSpace.from_dict({"learning_rate": {"log": [1e-4, 1e-0]}})
            >>> space.window([0.25], [0.5]).region()
            {'learning_rate': [0.001, 0.01]}
        """
        return SearchSpace(
            {
                k: d.window(float(lo), float(hi))
                for (k, d), lo, hi in zip(self.dims.items(), low, high, strict=True)
            }
        )

    @property
    def collapsed(self) -> bool:
        """True when the region holds a single configuration."""
        return all(d.collapsed for d in self.dims.values())

    def cardinality(self) -> int | None:
        """Number of distinct configurations when every dimension is discrete (or collapsed), else None."""
        total = 1
        for d in self.dims.values():
            if d.discrete:
                total *= d.cardinality() or 1
            elif not d.collapsed:
                return None
        return total

    def key(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable form of a configuration's searched values, rounded, for detecting repeats."""
        return tuple(d.canonical(params[k]) for k, d in self.dims.items())
