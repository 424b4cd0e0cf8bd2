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

__all__ = [
    "OPT_SGD",
    "OPT_MOMENTUM",
    "OPT_RMSPROP",
    "OPT_ADAM",
    "OPTIMIZERS",
    "COEF_NORM_EPS",
    "COEF_BN_MOMENTUM",
    "COEF_LEARNING_RATE",
    "COEF_BETA1",
    "COEF_BETA2",
    "COEF_EPSILON",
    "N_COEF",
    "COEF",
    "optimizer_step",
]

#: Optimizer code of plain gradient descent.
OPT_SGD = 0
#: Optimizer code of momentum (the exponentially weighted average).
OPT_MOMENTUM = 1
#: Optimizer code of RMSprop.
OPT_RMSPROP = 2
#: Optimizer code of Adam.
OPT_ADAM = 3
#: Optimizer codes by configuration name.
OPTIMIZERS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "rmsprop": OPT_RMSPROP, "adam": OPT_ADAM}

# Slots of the float64 vector ``coef`` (filled by :func:`core.nn.model.code_coef`): one vector carries
# every float coefficient of a run, the norms' two included.
#: ``coef`` slot: ε added to every normalization's variance.
COEF_NORM_EPS = 0
#: ``coef`` slot: momentum of the running statistics.
COEF_BN_MOMENTUM = 1
#: ``coef`` slot: the learning rate α of the current epoch.
COEF_LEARNING_RATE = 2
#: ``coef`` slot: Adam's β1, or momentum's β.
COEF_BETA1 = 3
#: ``coef`` slot: β2 of RMSprop and Adam.
COEF_BETA2 = 4
#: ``coef`` slot: ε of RMSprop and Adam.
COEF_EPSILON = 5
#: Length of ``coef``.
N_COEF = 6
#: ``coef`` slots by name.
COEF = {"norm_eps": COEF_NORM_EPS, "bn_momentum": COEF_BN_MOMENTUM, "learning_rate": COEF_LEARNING_RATE,
        "beta1": COEF_BETA1, "beta2": COEF_BETA2, "epsilon": COEF_EPSILON}


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
        coef: (N_COEF,) float64 vector indexed by the ``COEF_*`` slots (COEF_LEARNING_RATE is α for
            this step; COEF_BETA1 doubles as momentum's β).
    """
    t = params.dtype.type
    lr = t(coef[COEF_LEARNING_RATE])
    n = params.shape[0]
    if opt == OPT_SGD:
        for i in range(n):
            params[i] -= lr * grads[i]
    elif opt == OPT_MOMENTUM:
        b = t(coef[COEF_BETA1])
        c = t(1.0 - coef[COEF_BETA1])
        for i in range(n):
            v = b * m1[i] + c * grads[i]
            m1[i] = v
            params[i] -= lr * v
    elif opt == OPT_RMSPROP:
        b2 = t(coef[COEF_BETA2])
        c2 = t(1.0 - coef[COEF_BETA2])
        eps = t(coef[COEF_EPSILON])
        for i in range(n):
            g = grads[i]
            s = b2 * m2[i] + c2 * g * g
            m2[i] = s
            params[i] -= lr * g / (np.sqrt(s) + eps)
    else:  # OPT_ADAM
        b1 = t(coef[COEF_BETA1])
        c1 = t(1.0 - coef[COEF_BETA1])
        b2 = t(coef[COEF_BETA2])
        c2 = t(1.0 - coef[COEF_BETA2])
        eps = t(coef[COEF_EPSILON])
        # bias corrections in float64, folded into two scalars: α/(1−β1ᵗ) and 1/√(1−β2ᵗ)
        a = t(coef[COEF_LEARNING_RATE] / (1.0 - coef[COEF_BETA1] ** step))
        r = t(1.0 / np.sqrt(1.0 - coef[COEF_BETA2] ** step))
        for i in range(n):
            g = grads[i]
            m = b1 * m1[i] + c1 * g
            v = b2 * m2[i] + c2 * g * g
            m1[i] = m
            m2[i] = v
            params[i] -= a * m / (np.sqrt(v) * r + eps)
