"""Each searched hyperparameter as the frontend draws its axis: the distribution's kind and bounds.

``kind`` is ``log`` (a log axis), ``one_minus_log`` (β drawn as 1 − β on a log axis, as ``caviar plot``
does), ``float`` (linear), ``int`` (linear integers), ``int_log`` (integers on a log axis) or ``choice``
(categories, in the study file's order). ``scale`` says the same in axis terms.
"""

from __future__ import annotations

from typing import Any

from core.search.distributions import Choice, Distribution, Int, Log, OneMinusLog, Uniform

__all__ = ["axis", "axes"]


def _kind(dist: Distribution) -> tuple[str, str]:
    if isinstance(dist, OneMinusLog):
        return "one_minus_log", "one_minus_log"
    if isinstance(dist, Log):
        return "log", "log"
    if isinstance(dist, Uniform):
        return "float", "linear"
    if isinstance(dist, Int):
        return ("int_log", "log") if dist.log else ("int", "linear")
    if isinstance(dist, Choice):
        return "choice", "categorical"
    return str(dist.kind), "linear"


def axis(name: str, dist: Distribution) -> dict[str, Any]:
    """``{"name", "kind", "scale", "low", "high", "choices"}`` of one dimension."""
    kind, scale = _kind(dist)
    if isinstance(dist, Choice):
        return {"name": name, "kind": kind, "scale": scale, "low": None, "high": None,
                "choices": list(dist.choices)}
    low, high = dist.region()
    return {"name": name, "kind": kind, "scale": scale, "low": low, "high": high, "choices": None}


def axes(spec: Any) -> list[dict[str, Any]]:
    """Every searched dimension of a :class:`core.search.StudySpec`, in the study file's order."""
    return [axis(name, dist) for name, dist in spec.space.dims.items()]
