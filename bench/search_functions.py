"""Standard test functions with known minima, embedded in a space of real hyperparameter keys.

Each function of ``d`` variables reads the first ``d`` keys of :data:`KEYS`, a mix of the product's
scales (``log``, ``one_minus_log``, ``uniform``): variable ``i`` is an affine image of key ``i``'s unit
coordinate (so of ``r`` for a learning rate), stretched over the function's usual domain. A sampler
therefore searches exactly the space a study file would give it, and the regret ``f(best) − f*`` is
exact. Optuna is handed the same keys on the same scales (``bench/search.py``), so both see the same
geometry.

    >>> fn = FUNCTIONS["branin"]
    >>> space = fn.space()
    >>> round(fn.regret(fn.at_optimum(space)), 6)
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.search import SearchSpace

__all__ = ["FUNCTIONS", "KEYS", "TestFunction"]

#: The keys a function's variables are embedded in, in order, on the product's scales.
KEYS: list[tuple[str, dict[str, list[float]]]] = [
    ("learning_rate", {"log": [1e-5, 1.0]}),
    ("beta1", {"one_minus_log": [0.5, 0.9999]}),
    ("momentum", {"uniform": [0.0, 0.99]}),
    ("lr_decay", {"uniform": [0.0, 2.0]}),
    ("beta2", {"one_minus_log": [0.9, 0.99999]}),
    ("bn_momentum", {"log": [1e-3, 1.0]}),
    ("epsilon", {"log": [1e-10, 1e-2]}),
]


def _branin(x: np.ndarray) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return float(a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s)


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + mid + tail)


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d))
        - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
        + 20
        + math.e
    )


def _styblinski_tang(x: np.ndarray) -> float:
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


@dataclass(frozen=True)
class TestFunction:
    """A test function: ``f`` on the box ``[low, high]^d`` with minimum ``minimum`` at ``argmin``."""

    name: str
    dims: int
    f: Callable[[np.ndarray], float]
    low: float
    high: float
    minimum: float
    argmin: tuple[float, ...]

    __test__ = False  # not a pytest test class

    def space(self) -> SearchSpace:
        """The search space: the first ``dims`` keys of :data:`KEYS`."""
        return SearchSpace.from_dict(dict(KEYS[: self.dims]))

    def value(self, params: Mapping[str, Any]) -> float:
        """``f`` at a configuration of :meth:`space`."""
        u = self.space().to_unit(params)
        return self.f(self.low + u * (self.high - self.low))

    def regret(self, params: Mapping[str, Any]) -> float:
        """``f(params) − f*`` (non-negative up to rounding)."""
        return self.value(params) - self.minimum

    def at_optimum(self, space: SearchSpace) -> dict[str, Any]:
        """The configuration at the function's minimiser (for checks)."""
        u = (np.array(self.argmin) - self.low) / (self.high - self.low)
        return space.from_unit(u)


_ST = -2.903534
#: The suite: 2 to 7 dimensions, smooth and multimodal, minima off the cube's centre.
FUNCTIONS: dict[str, TestFunction] = {
    f.name: f
    for f in (
        # Branin's box is [-5, 10] x [0, 15]; one box for both axes is [-5, 15] (its 3 minima stay inside).
        TestFunction("branin", 2, _branin, -5.0, 15.0, 0.397887357729738, (math.pi, 2.275)),
        TestFunction("rosenbrock", 4, _rosenbrock, -5.0, 10.0, 0.0, (1.0,) * 4),
        TestFunction("levy", 4, _levy, -10.0, 10.0, 0.0, (1.0,) * 4),
        TestFunction("ackley", 5, _ackley, -15.0, 30.0, 0.0, (0.0,) * 5),
        TestFunction(
            "hartmann6",
            6,
            _hartmann6,
            0.0,
            1.0,
            -3.322368011415515,
            (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
        ),
        TestFunction("styblinski_tang", 7, _styblinski_tang, -5.0, 5.0, 7 * -39.16616570377, (_ST,) * 7),
    )
}
