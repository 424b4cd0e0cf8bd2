"""Initial parameters: He for ReLU, Xavier (Glorot) for tanh and sigmoid."""

from __future__ import annotations

import numpy as np

__all__ = ["init_weight"]


def init_weight(rng: np.random.Generator, fan_in: int, fan_out: int, activation: str) -> np.ndarray:
    """A (fan_in, fan_out) float64 weight matrix drawn from a zero-mean normal.

    He: std = √(2/fan_in) for ``relu``. Xavier (Glorot): std = √(2/(fan_in + fan_out)) for
    ``tanh``, ``sigmoid`` and the linear softmax output (pass ``activation="linear"``).
    """
    std = np.sqrt(2.0 / fan_in) if activation == "relu" else np.sqrt(2.0 / (fan_in + fan_out))
    return rng.standard_normal((fan_in, fan_out)) * std
