"""The compiled network: forward, backward, one fused training epoch, validation and the population pass.

A network is described by small integer arrays instead of Python objects, so one compiled
specialisation per dtype serves every architecture, norm, activation and optimizer:

- ``offs`` (L+1, 7) int64: offset of each parameter block of layer l in the flat parameter buffer
  (columns :data:`SLOT`; −1 when the block does not exist). Layers 0..L−1 are hidden, layer L is
  the softmax output (a plain dense layer with bias).
- ``ints`` (8,) int64: :data:`INT` (layers, hidden units, classes, features, norm, activation,
  optimizer, groups).
- ``coef`` (6,) float64: :data:`core.nn.optim.COEF` (norm ε, running-statistics momentum, α,
  β1, β2, ε).

Buffers (all of the network's dtype, preallocated once per training by :func:`workspace`):
``hid`` (4, L, Bmax, H) holds per hidden layer the pre-norm z, x̂, the activation a, and the
per-element (switchable) or per-group (group/layer) 1/σ; ``vec`` (6, L, H) holds batch mean,
batch variance, 1/σ, weight-norm column norms and two scratch rows; ``rows`` (4, L, Bmax) holds
per-sample statistics and scratch for switchable norm; ``lamw`` (2, L, 2) the softmax weights of
switchable norm; ``dbuf`` (2, Bmax, H) ping-pong gradient buffers; ``logits`` (Bmax, C).
``running`` (2, L, H) holds the running mean and variance used at inference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from core.nn.layers import (
    JIT,
    _act_backward_inplace,
    _act_forward_into,
    _act_inplace,
    _add_bias,
    _bn_apply_into,
    _bn_backward_into,
    _bn_stats_into,
    _col_sum_into,
    _gn_backward_into,
    _gn_into,
    _row_stats_into,
    _sn_apply_into,
    _sn_backward_into,
    _softmax2_into,
    _softmax_ce_into,
    _wn_backward_into,
    _wn_weight_into,
)
from core.nn.optim import optimizer_step

__all__ = [
    "NORMS",
    "SLOT",
    "INT",
    "workspace",
    "train_epoch",
    "evaluate",
    "predict",
    "population_statistics",
    "loss_and_grad",
]

#: Norm codes used by the kernels.
NORMS = {"none": 0, "batch": 1, "layer": 2, "group": 3, "switchable": 4, "weight": 5}

#: Columns of ``offs``: the parameter blocks a layer may have.
SLOT = {"W": 0, "b": 1, "gamma": 2, "beta": 3, "g": 4, "lambda_mean": 5, "lambda_var": 6}

#: Slots of ``ints``.
INT = {"layers": 0, "hidden": 1, "classes": 2, "features": 3, "norm": 4, "activation": 5,
       "optimizer": 6, "groups": 7}

_BATCH, _LAYER, _GROUP, _SWITCH, _WEIGHT = 1, 2, 3, 4, 5
_TRAIN, _INFER, _BATCH_STATS = 0, 1, 2


def workspace(layers: int, hidden: int, classes: int, bmax: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Allocate the kernels' buffers for mini-batches of up to ``bmax`` rows.

    Returns:
        ``(hid, vec, rows, lamw, dbuf, logits)`` with the shapes given in the module docstring.
    """
    return (
        np.zeros((4, layers, bmax, hidden), dtype=dtype),
        np.zeros((6, layers, hidden), dtype=dtype),
        np.zeros((4, layers, bmax), dtype=dtype),
        np.zeros((2, layers, 2), dtype=dtype),
        np.zeros((2, bmax, hidden), dtype=dtype),
        np.zeros((bmax, classes), dtype=dtype),
    )


@njit(**JIT)
def _mat(buf, off, rows, cols):
    """A (rows, cols) C-contiguous view of the flat buffer starting at off."""
    return buf[off:off + rows * cols].reshape(rows, cols)


@njit(**JIT)
def _weight(params, wbuf, offs, ints, layer, din, dout):
    """The weight matrix a layer multiplies by: the effective g·v/‖v‖ for weight norm."""
    if ints[4] == _WEIGHT and layer < ints[0]:
        return _mat(wbuf, offs[layer, 0], din, dout)
    return _mat(params, offs[layer, 0], din, dout)


@njit(**JIT)
def _prepare_weights(params, wbuf, offs, ints, vec):
    """Write the effective weights of weight-normalized layers into wbuf (no-op for other norms)."""
    if ints[4] != _WEIGHT:
        return
    hidden = ints[1]
    din = ints[3]
    for layer in range(ints[0]):
        o = offs[layer, 0]
        og = offs[layer, 4]
        _wn_weight_into(_mat(params, o, din, hidden), params[og:og + hidden], vec[3, layer],
                        _mat(wbuf, o, din, hidden))
        din = hidden


@njit(**JIT)
def _running_update(rmean, rvar, mean, var, m, momentum):
    """PyTorch's running statistics: r = (1−momentum)·r + momentum·batch, variance unbiased."""
    t = rmean.dtype.type
    keep = t(1.0 - momentum)
    mom = t(momentum)
    unbias = t(momentum * m / (m - 1.0))
    for j in range(rmean.shape[0]):
        rmean[j] = keep * rmean[j] + mom * mean[j]
        rvar[j] = keep * rvar[j] + unbias * var[j]


@njit(**JIT)
def _forward(a0, m, mode, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits):
    """Forward pass of m rows a0 (m, features) into logits[:m].

    mode 0: training (batch statistics, running statistics updated); 1: inference (running
    statistics); 2: batch statistics without updating anything (the population pass).
    """
    layers = ints[0]
    hidden = ints[1]
    classes = ints[2]
    norm = ints[4]
    act = ints[5]
    eps = coef[0]
    a = a0
    din = ints[3]
    for layer in range(layers):
        z = hid[0, layer, :m]
        xh = hid[1, layer, :m]
        out = hid[2, layer, :m]
        np.dot(a, _weight(params, wbuf, offs, ints, layer, din, hidden), z)
        ob = offs[layer, 1]
        if ob >= 0:
            _add_bias(z, params[ob:ob + hidden])
        og = offs[layer, 2]
        oe = offs[layer, 3]
        if norm == _BATCH:
            gamma = params[og:og + hidden]
            beta = params[oe:oe + hidden]
            if mode == _INFER:
                _bn_apply_into(z, gamma, beta, running[0, layer], running[1, layer], eps,
                               vec[2, layer], xh, out)
            else:
                _bn_stats_into(z, vec[0, layer], vec[1, layer])
                _bn_apply_into(z, gamma, beta, vec[0, layer], vec[1, layer], eps, vec[2, layer], xh, out)
                if mode == _TRAIN:
                    _running_update(running[0, layer], running[1, layer], vec[0, layer], vec[1, layer],
                                    m, coef[1])
            _act_inplace(out, act)
        elif norm in (_LAYER, _GROUP):
            groups = 1 if norm == _LAYER else ints[7]
            _gn_into(z, params[og:og + hidden], params[oe:oe + hidden], groups, eps, hid[3, layer], xh, out)
            _act_inplace(out, act)
        elif norm == _SWITCH:
            ol = offs[layer, 5]
            ov = offs[layer, 6]
            _softmax2_into(params[ol:ol + 2], lamw[0, layer])
            _softmax2_into(params[ov:ov + 2], lamw[1, layer])
            mu_l = rows[0, layer, :m]
            var_l = rows[1, layer, :m]
            _row_stats_into(z, mu_l, var_l)
            if mode == _INFER:
                mu_b = running[0, layer]
                var_b = running[1, layer]
            else:
                mu_b = vec[0, layer]
                var_b = vec[1, layer]
                _bn_stats_into(z, mu_b, var_b)
                if mode == _TRAIN:
                    _running_update(running[0, layer], running[1, layer], mu_b, var_b, m, coef[1])
            _sn_apply_into(z, params[og:og + hidden], params[oe:oe + hidden], lamw[0, layer], lamw[1, layer],
                           mu_b, var_b, mu_l, var_l, eps, hid[3, layer, :m], xh, out)
            _act_inplace(out, act)
        else:
            _act_forward_into(z, act, out)
        a = out
        din = hidden
    lg = logits[:m]
    np.dot(a, _mat(params, offs[layers, 0], hidden, classes), lg)
    ob = offs[layers, 1]
    _add_bias(lg, params[ob:ob + classes])


@njit(**JIT)
def _backward(a0, m, params, wbuf, grads, offs, ints, hid, vec, rows, lamw, dbuf, logits):
    """Backward pass after a training forward; logits[:m] holds dloss/dlogits. Fills grads."""
    layers = ints[0]
    hidden = ints[1]
    classes = ints[2]
    norm = ints[4]
    act = ints[5]
    dl = logits[:m]
    o = offs[layers, 0]
    ob = offs[layers, 1]
    np.dot(hid[2, layers - 1, :m].T, dl, _mat(grads, o, hidden, classes))
    _col_sum_into(dl, grads[ob:ob + classes])
    # d holds dloss/da of the current layer; the norms' backward writes dz into the other buffer
    # (distinct arrays let the element loops vectorize), which then feeds the next dloss/da
    cur = 0
    d = dbuf[cur, :m]
    np.dot(dl, _mat(params, o, hidden, classes).T, d)
    for layer in range(layers - 1, -1, -1):
        _act_backward_inplace(d, hid[2, layer, :m], act)
        og = offs[layer, 2]
        oe = offs[layer, 3]
        zi = 1 - cur if norm in (_BATCH, _LAYER, _GROUP, _SWITCH) else cur
        dz = dbuf[zi, :m]
        if norm == _BATCH:
            _bn_backward_into(d, hid[1, layer, :m], params[og:og + hidden], vec[2, layer], dz,
                              grads[og:og + hidden], grads[oe:oe + hidden])
        elif norm in (_LAYER, _GROUP):
            groups = 1 if norm == _LAYER else ints[7]
            _gn_backward_into(d, hid[1, layer, :m], params[og:og + hidden], hid[3, layer], groups, dz,
                              grads[og:og + hidden], grads[oe:oe + hidden])
        elif norm == _SWITCH:
            ol = offs[layer, 5]
            ov = offs[layer, 6]
            _sn_backward_into(d, hid[0, layer, :m], hid[1, layer, :m], hid[3, layer, :m],
                              params[og:og + hidden], lamw[0, layer], lamw[1, layer],
                              vec[0, layer], vec[1, layer], rows[0, layer, :m], rows[1, layer, :m],
                              vec[4, layer], vec[5, layer], rows[2, layer, :m], rows[3, layer, :m], dz,
                              grads[og:og + hidden], grads[oe:oe + hidden], grads[ol:ol + 2],
                              grads[ov:ov + 2])
        ob = offs[layer, 1]
        if ob >= 0:
            _col_sum_into(dz, grads[ob:ob + hidden])
        din = ints[3] if layer == 0 else hidden
        a_in = a0 if layer == 0 else hid[2, layer - 1, :m]
        o = offs[layer, 0]
        dw = _mat(grads, o, din, hidden)
        np.dot(a_in.T, dz, dw)
        if norm == _WEIGHT:
            ogn = offs[layer, 4]
            _wn_backward_into(dw, _mat(params, o, din, hidden), params[ogn:ogn + hidden], vec[3, layer], dw,
                              grads[ogn:ogn + hidden])
        if layer > 0:
            # dz lives in one buffer; write the next layer's dloss/da into the other
            cur = 1 - zi
            d = dbuf[cur, :m]
            np.dot(dz, _weight(params, wbuf, offs, ints, layer, din, hidden).T, d)


@njit(**JIT)
def train_epoch(X, y, seed, batch, params, grads, wbuf, m1, m2, step, offs, ints, coef, running,
                hid, vec, rows, lamw, dbuf, logits, xb, yb):
    """One epoch: shuffle, then for each mini-batch gather, forward, backward and update.

    Mini-batches are consecutive slices of a permutation drawn from numba's generator seeded
    with ``seed``. A last partial batch of one sample is merged into the previous batch, so no
    batch statistic is ever taken over a single sample; ``xb`` and ``yb`` hold ``batch + 1`` rows.

    Args:
        X: (n, features) training inputs, C-contiguous. y: (n,) int64 labels.
        seed: shuffle seed of this epoch. batch: mini-batch size (≤ n).
        params, grads, wbuf, m1, m2: (P,) flat buffers; step: optimizer steps taken so far.
        offs, ints, coef, running, hid, vec, rows, lamw, dbuf, logits: see the module docstring.
        xb: (≥ batch+1, features), yb: (≥ batch+1,) gather buffers.

    Returns:
        (mean training loss over the epoch's samples, or NaN as soon as a batch loss is not
        finite; the step count after the epoch).
    """
    n = X.shape[0]
    features = X.shape[1]
    np.random.seed(seed)
    perm = np.random.permutation(n)
    full = n // batch
    rest = n - full * batch
    nbatches = full if rest <= 1 else full + 1
    total = 0.0
    start = 0
    for b in range(nbatches):
        m = batch if b < nbatches - 1 else n - start
        for i in range(m):
            src = perm[start + i]
            row = X[src]
            dst = xb[i]
            for j in range(features):
                dst[j] = row[j]
            yb[i] = y[src]
        a0 = xb[:m]
        _prepare_weights(params, wbuf, offs, ints, vec)
        _forward(a0, m, _TRAIN, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits)
        lg = logits[:m]
        loss = _softmax_ce_into(lg, yb[:m], lg)
        if not np.isfinite(loss):
            return np.nan, step
        _backward(a0, m, params, wbuf, grads, offs, ints, hid, vec, rows, lamw, dbuf, logits)
        step += 1
        optimizer_step(params, grads, m1, m2, step, ints[6], coef)
        total += loss * m
        start += m
    return total / n, step


@njit(**JIT)
def evaluate(X, y, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits):
    """Inference-mode mean cross-entropy and accuracy over (X, y), in chunks of the buffers' rows.

    Returns:
        (mean loss, accuracy in [0, 1]).
    """
    n = X.shape[0]
    chunk = logits.shape[0]
    classes = logits.shape[1]
    _prepare_weights(params, wbuf, offs, ints, vec)
    total = 0.0
    correct = 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        _forward(X[start:start + m], m, _INFER, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw,
                 logits)
        lg = logits[:m]
        for i in range(m):
            best = 0
            for k in range(1, classes):
                if lg[i, k] > lg[i, best]:
                    best = k
            if best == y[start + i]:
                correct += 1
        total += _softmax_ce_into(lg, y[start:start + m], lg) * m
    return total / n, correct / n


@njit(**JIT)
def predict(X, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits, out):
    """Inference-mode class probabilities softmax(logits) of X (n, features) into out (n, C)."""
    n = X.shape[0]
    chunk = logits.shape[0]
    classes = logits.shape[1]
    _prepare_weights(params, wbuf, offs, ints, vec)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        _forward(X[start:start + m], m, _INFER, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw,
                 logits)
        for i in range(m):
            mx = logits[i, 0]
            for k in range(1, classes):
                mx = max(mx, logits[i, k])
            s = 0.0
            for k in range(classes):
                e = np.exp(logits[i, k] - mx)
                out[start + i, k] = e
                s += e
            for k in range(classes):
                out[start + i, k] /= s


@njit(**JIT)
def population_statistics(X, batch, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits):
    """The paper's inference statistics, written into ``running``.

    With the weights frozen, X is cut in its stored order into ⌊n/batch⌋ full mini-batches
    (the remainder is left out); each goes through the training-mode forward pass (every layer
    normalized by its own batch statistics, as during training). Then per layer and feature
    μ = mean over batches of μ_B and σ² = m/(m−1) · mean over batches of σ²_B (m = batch).
    Only batch and switchable norm have batch statistics; for other norms this does nothing.
    """
    norm = ints[4]
    if norm != _BATCH and norm != _SWITCH:
        return
    n = X.shape[0]
    layers = ints[0]
    hidden = ints[1]
    full = n // batch
    acc = np.zeros((2, layers, hidden))
    _prepare_weights(params, wbuf, offs, ints, vec)
    for b in range(full):
        _forward(X[b * batch:(b + 1) * batch], batch, _BATCH_STATS, params, wbuf, offs, ints, coef, running,
                 hid, vec, rows, lamw, logits)
        for layer in range(layers):
            for j in range(hidden):
                acc[0, layer, j] += vec[0, layer, j]
                acc[1, layer, j] += vec[1, layer, j]
    unbias = batch / (batch - 1.0)
    for layer in range(layers):
        for j in range(hidden):
            running[0, layer, j] = acc[0, layer, j] / full
            running[1, layer, j] = unbias * acc[1, layer, j] / full


@njit(**JIT)
def loss_and_grad(Xb, yb, params, grads, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, dbuf, logits):
    """Training-mode loss of one mini-batch (Xb (m, features), yb (m,)) and its gradient into grads."""
    m = Xb.shape[0]
    _prepare_weights(params, wbuf, offs, ints, vec)
    _forward(Xb, m, _TRAIN, params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits)
    lg = logits[:m]
    loss = _softmax_ce_into(lg, yb, lg)
    _backward(Xb, m, params, wbuf, grads, offs, ints, hid, vec, rows, lamw, dbuf, logits)
    return loss
