"""Optimizers: one fused loop over the flat parameter buffer.

All parameters of a network live in one flat array (see :mod:`core.nn.model`), so one loop
updates every weight, bias, γ, β, g and λ. The rules (θ parameters, g gradients, t the step
count starting at 1, α the learning rate):

- ``sgd``: θ −= α·g
- ``momentum`` (the course's exponentially weighted *average*, not PyTorch's sum):
  v = β·v + (1−β)·g ; θ −= α·v. PyTorch's ``SGD(momentum=β)`` uses v = β·v + g, so its learning
  rate corresponds to ours times 1/(1−β).
- ``rmsprop``: s = β2·s + (1−β2)·g² ; θ −= α·g/(√s + ε)
- ``adam``: m = β1·m + (1−β1)·g ; v = β2·v + (1−β2)·g² ; θ −= α·m̂/(√v̂ + ε) with
  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ), ε outside the root (PyTorch's convention).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from core.nn.layers import JIT

__all__ = ["OPTIMIZERS", "COEF", "optimizer_step"]

#: Optimizer codes used by the kernels.
OPTIMIZERS = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 3}

#: Slots of the float64 coefficient vector passed to the kernels.
COEF = {"norm_eps": 0, "bn_momentum": 1, "learning_rate": 2, "beta1": 3, "beta2": 4, "epsilon": 5}


@njit(**JIT)
def optimizer_step(params, grads, m1, m2, step, opt, coef):
    """Apply one update in place.

    Args:
        params: (P,) parameters, updated in place.
        grads: (P,) gradients of the mean loss.
        m1: (P,) first-moment state (momentum's v, Adam's m).
        m2: (P,) second-moment state (RMSprop's s, Adam's v).
        step: the step number t ≥ 1 (Adam's bias correction).
        opt: optimizer code from :data:`OPTIMIZERS`.
        coef: float64 vector indexed by :data:`COEF` (learning_rate is α for this step; beta1
            doubles as momentum's β).
    """
    t = params.dtype.type
    lr = t(coef[2])
    n = params.shape[0]
    if opt == 0:
        for i in range(n):
            params[i] -= lr * grads[i]
    elif opt == 1:
        b = t(coef[3])
        c = t(1.0 - coef[3])
        for i in range(n):
            v = b * m1[i] + c * grads[i]
            m1[i] = v
            params[i] -= lr * v
    elif opt == 2:
        b2 = t(coef[4])
        c2 = t(1.0 - coef[4])
        eps = t(coef[5])
        for i in range(n):
            g = grads[i]
            s = b2 * m2[i] + c2 * g * g
            m2[i] = s
            params[i] -= lr * g / (np.sqrt(s) + eps)
    else:
        b1 = t(coef[3])
        c1 = t(1.0 - coef[3])
        b2 = t(coef[4])
        c2 = t(1.0 - coef[4])
        eps = t(coef[5])
        # bias corrections in float64, folded into two scalars: α/(1−β1ᵗ) and 1/√(1−β2ᵗ)
        a = t(coef[2] / (1.0 - coef[3] ** step))
        r = t(1.0 / np.sqrt(1.0 - coef[4] ** step))
        for i in range(n):
            g = grads[i]
            m = b1 * m1[i] + c1 * g
            v = b2 * m2[i] + c2 * g * g
            m1[i] = m
            m2[i] = v
            params[i] -= a * m / (np.sqrt(v) * r + eps)
