"""The compiled network: forward, backward, one fused training epoch, validation and the population pass.

A network is described by small integer arrays instead of Python objects, so one compiled
specialisation per dtype serves every architecture, norm, activation and optimizer. Every kernel
takes one :class:`Workspace` (built by :meth:`core.nn.model.Model.workspace`) holding the model's
arrays, that description and every buffer, read by field name; besides it a kernel takes only the
data (and ``batch``, ``seed``), whose shapes it checks. The description:

- ``offs`` (L+1, N_SLOTS) int64: offset of each parameter block of layer l in the flat parameter
  buffer (columns ``SLOT_*``; −1 when the block does not exist). Layers 0..L−1 are hidden, layer L
  is the softmax output (a plain dense layer with bias).
- ``ints`` (N_INTS,) int64: slots ``INT_*`` (layers, hidden units, classes, features, norm,
  activation, optimizer, groups), the codes being ``NORM_*``, ``ACT_*`` and ``OPT_*``.
- ``coef`` (N_COEF,) float64: slots ``COEF_*`` of :mod:`core.nn.optim` (norm ε, running-statistics
  momentum, α, β1, β2, ε).

Integer codes and slots are module-level constants, which numba compiles in as constants.
"""

from __future__ import annotations

from typing import NamedTuple

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
from core.nn.optim import COEF_BN_MOMENTUM, COEF_NORM_EPS, optimizer_step

__all__ = [
    "NORM_NONE", "NORM_BATCH", "NORM_LAYER", "NORM_GROUP", "NORM_SWITCHABLE", "NORM_WEIGHT", "NORMS",
    "SLOT_W", "SLOT_B", "SLOT_GAMMA", "SLOT_BETA", "SLOT_G", "SLOT_LAMBDA_MEAN", "SLOT_LAMBDA_VAR",
    "N_SLOTS", "SLOT",
    "INT_LAYERS", "INT_HIDDEN", "INT_CLASSES", "INT_FEATURES", "INT_NORM", "INT_ACTIVATION",
    "INT_OPTIMIZER", "INT_GROUPS", "N_INTS", "INT",
    "STAT_MEAN", "STAT_VAR",
    "HID_Z", "HID_XHAT", "HID_OUT", "HID_INV", "N_HID",
    "VEC_MEAN", "VEC_VAR", "VEC_INV", "VEC_NORMS", "VEC_SCRATCH_A", "VEC_SCRATCH_B", "N_VEC",
    "ROW_MEAN", "ROW_VAR", "ROW_SCRATCH_A", "ROW_SCRATCH_B", "N_ROWS",
    "MODE_TRAIN", "MODE_INFER", "MODE_BATCH_STATS",
    "Workspace",
    "prepare_weights",
    "train_epoch",
    "evaluate",
    "predict",
    "population_statistics",
    "loss_and_grad",
]

# ---- codes of ``ints[INT_NORM]`` ------------------------------------------------------------------

#: Norm code: no normalization.
NORM_NONE = 0
#: Norm code: batch norm.
NORM_BATCH = 1
#: Norm code: layer norm (group norm with one group).
NORM_LAYER = 2
#: Norm code: group norm.
NORM_GROUP = 3
#: Norm code: switchable norm (batch and layer statistics).
NORM_SWITCHABLE = 4
#: Norm code: weight norm.
NORM_WEIGHT = 5
#: Norm codes by configuration name.
NORMS = {"none": NORM_NONE, "batch": NORM_BATCH, "layer": NORM_LAYER, "group": NORM_GROUP,
         "switchable": NORM_SWITCHABLE, "weight": NORM_WEIGHT}

# ---- columns of ``offs``: the parameter blocks a layer may have ----------------------------------

#: ``offs`` column: the weight matrix W (weight norm's direction v).
SLOT_W = 0
#: ``offs`` column: the bias b.
SLOT_B = 1
#: ``offs`` column: the norm's scale γ.
SLOT_GAMMA = 2
#: ``offs`` column: the norm's shift β.
SLOT_BETA = 3
#: ``offs`` column: weight norm's lengths g.
SLOT_G = 4
#: ``offs`` column: switchable norm's logits λ of the mean's weights.
SLOT_LAMBDA_MEAN = 5
#: ``offs`` column: switchable norm's logits λ of the variance's weights.
SLOT_LAMBDA_VAR = 6
#: Number of ``offs`` columns.
N_SLOTS = 7
#: ``offs`` columns by block name (the names of :meth:`core.nn.model.Layout.block`).
SLOT = {"W": SLOT_W, "b": SLOT_B, "gamma": SLOT_GAMMA, "beta": SLOT_BETA, "g": SLOT_G,
        "lambda_mean": SLOT_LAMBDA_MEAN, "lambda_var": SLOT_LAMBDA_VAR}

# ---- slots of ``ints`` ------------------------------------------------------------------------------

#: ``ints`` slot: hidden layers L.
INT_LAYERS = 0
#: ``ints`` slot: units per hidden layer H.
INT_HIDDEN = 1
#: ``ints`` slot: classes C.
INT_CLASSES = 2
#: ``ints`` slot: input features.
INT_FEATURES = 3
#: ``ints`` slot: the ``NORM_*`` code.
INT_NORM = 4
#: ``ints`` slot: the ``ACT_*`` code of :mod:`core.nn.layers`.
INT_ACTIVATION = 5
#: ``ints`` slot: the ``OPT_*`` code of :mod:`core.nn.optim`.
INT_OPTIMIZER = 6
#: ``ints`` slot: groups of group norm.
INT_GROUPS = 7
#: Length of ``ints``.
N_INTS = 8
#: ``ints`` slots by name.
INT = {"layers": INT_LAYERS, "hidden": INT_HIDDEN, "classes": INT_CLASSES, "features": INT_FEATURES,
       "norm": INT_NORM, "activation": INT_ACTIVATION, "optimizer": INT_OPTIMIZER, "groups": INT_GROUPS}

# ---- slots of the first axis of the workspace's buffers ------------------------------------------

#: First-axis slot of the mean in ``running``, ``lamw`` (weights of switchable norm's mean) and
#: ``pop_sum``.
STAT_MEAN = 0
#: First-axis slot of the variance in ``running``, ``lamw`` and ``pop_sum``.
STAT_VAR = 1
#: ``hid`` slot: the pre-norm z = a·W (+ b).
HID_Z = 0
#: ``hid`` slot: the normalized x̂.
HID_XHAT = 1
#: ``hid`` slot: the layer's output activation a.
HID_OUT = 2
#: ``hid`` slot: 1/σ per element (switchable norm) or per group (group and layer norm, first G columns).
HID_INV = 3
#: Number of ``hid`` slots.
N_HID = 4
#: ``vec`` slot: batch mean per unit.
VEC_MEAN = 0
#: ``vec`` slot: batch (biased) variance per unit.
VEC_VAR = 1
#: ``vec`` slot: batch norm's 1/σ per unit.
VEC_INV = 2
#: ``vec`` slot: weight norm's column norms ‖v‖.
VEC_NORMS = 3
#: ``vec`` slot: switchable norm's backward scratch (per-unit Σ dμ).
VEC_SCRATCH_A = 4
#: ``vec`` slot: switchable norm's backward scratch (per-unit Σ dσ²).
VEC_SCRATCH_B = 5
#: Number of ``vec`` slots.
N_VEC = 6
#: ``rows`` slot: per-sample mean (switchable norm's layer statistics).
ROW_MEAN = 0
#: ``rows`` slot: per-sample variance.
ROW_VAR = 1
#: ``rows`` slot: switchable norm's backward scratch (per-sample Σ dμ).
ROW_SCRATCH_A = 2
#: ``rows`` slot: switchable norm's backward scratch (per-sample Σ dσ²).
ROW_SCRATCH_B = 3
#: Number of ``rows`` slots.
N_ROWS = 4

# ---- modes of the forward pass ----------------------------------------------------------------------

#: Forward mode: training (batch statistics; running statistics updated).
MODE_TRAIN = 0
#: Forward mode: inference (running statistics).
MODE_INFER = 1
#: Forward mode: batch statistics without updating anything (the population pass).
MODE_BATCH_STATS = 2


class Workspace(NamedTuple):
    """Everything a kernel reads or writes besides the data: one argument, fields by name.

    Numba passes a NamedTuple of arrays as a plain struct (no boxing, no extra compile per
    architecture); every field has the network's dtype unless noted. R is the most rows one pass
    handles (a training workspace needs batch + 1: a last batch of one sample is merged into the
    previous one), P the size of the flat parameter buffer. An inference workspace has zero-length
    ``grads``, ``m1``, ``m2``, ``xb`` and ``yb``; the training kernels refuse it.
    """

    #: (P,) the model's flat parameters, trained in place (the model's own array).
    params: np.ndarray
    #: (2, L, H) the model's inference mean and variance (``STAT_*``; the model's own array).
    running: np.ndarray
    #: (L+1, N_SLOTS) int64 offsets of the parameter blocks (``SLOT_*``).
    offs: np.ndarray
    #: (N_INTS,) int64 description of the network (``INT_*``).
    ints: np.ndarray
    #: (N_COEF,) float64 coefficients (``COEF_*``); the training loop sets the learning rate per epoch.
    coef: np.ndarray
    #: (P,) weight norm's effective weights g·v/‖v‖ at the W offsets (unused by other norms).
    wbuf: np.ndarray
    #: (P,) gradients of the mean loss of the last mini-batch.
    grads: np.ndarray
    #: (P,) optimizer state: first moment (momentum's v, Adam's m).
    m1: np.ndarray
    #: (P,) optimizer state: second moment (RMSprop's s, Adam's v).
    m2: np.ndarray
    #: (1,) int64 optimizer steps taken (Adam's bias correction).
    step: np.ndarray
    #: (N_HID, L, R, H) per-layer activations and caches (``HID_*``).
    hid: np.ndarray
    #: (N_VEC, L, H) per-layer, per-unit statistics and scratch (``VEC_*``).
    vec: np.ndarray
    #: (N_ROWS, L, R) per-layer, per-sample statistics and scratch (``ROW_*``).
    rows: np.ndarray
    #: (2, L, 2) switchable norm's softmax weights (``STAT_*`` × ``MIX_*`` of :mod:`core.nn.layers`).
    lamw: np.ndarray
    #: (2, R, H) ping-pong gradient buffers of the backward pass.
    dbuf: np.ndarray
    #: (R, C) logits, overwritten by dloss/dlogits in training.
    logits: np.ndarray
    #: (R, features) the gathered mini-batch.
    xb: np.ndarray
    #: (R,) int64 its labels.
    yb: np.ndarray
    #: (2, L, H) float64 sums of the batch statistics of the population pass (``STAT_*``).
    pop_sum: np.ndarray


@njit(**JIT)
def _mat(buf, off, rows, cols):
    """A (rows, cols) C-contiguous view of the flat buffer starting at off."""
    return buf[off:off + rows * cols].reshape(rows, cols)


@njit(**JIT)
def _weight(ws, layer, din, dout):
    """The weight matrix a layer multiplies by: the effective g·v/‖v‖ for weight norm."""
    o = ws.offs[layer, SLOT_W]
    if ws.ints[INT_NORM] == NORM_WEIGHT and layer < ws.ints[INT_LAYERS]:
        return _mat(ws.wbuf, o, din, dout)
    return _mat(ws.params, o, din, dout)


@njit(**JIT)
def prepare_weights(ws):
    """Write the effective weights of weight-normalized layers into ``ws.wbuf`` and their column
    norms into ``ws.vec[VEC_NORMS]`` (a no-op for other norms)."""
    ints = ws.ints
    if ints[INT_NORM] != NORM_WEIGHT:
        return
    params, offs, wbuf = ws.params, ws.offs, ws.wbuf
    hidden = ints[INT_HIDDEN]
    din = ints[INT_FEATURES]
    for layer in range(ints[INT_LAYERS]):
        o = offs[layer, SLOT_W]
        og = offs[layer, SLOT_G]
        _wn_weight_into(_mat(params, o, din, hidden), params[og:og + hidden], ws.vec[VEC_NORMS, layer],
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
def _forward(ws, a0, m, mode):
    """Forward pass of m rows a0 (m, features) into ws.logits[:m] in mode ``MODE_*``."""
    params, offs, ints, coef, running = ws.params, ws.offs, ws.ints, ws.coef, ws.running
    hid, vec, rows, lamw = ws.hid, ws.vec, ws.rows, ws.lamw
    layers = ints[INT_LAYERS]
    hidden = ints[INT_HIDDEN]
    classes = ints[INT_CLASSES]
    norm = ints[INT_NORM]
    act = ints[INT_ACTIVATION]
    eps = coef[COEF_NORM_EPS]
    a = a0
    din = ints[INT_FEATURES]
    for layer in range(layers):
        z = hid[HID_Z, layer, :m]
        xh = hid[HID_XHAT, layer, :m]
        out = hid[HID_OUT, layer, :m]
        np.dot(a, _weight(ws, layer, din, hidden), z)
        ob = offs[layer, SLOT_B]
        if ob >= 0:
            _add_bias(z, params[ob:ob + hidden])
        og = offs[layer, SLOT_GAMMA]
        oe = offs[layer, SLOT_BETA]
        if norm == NORM_BATCH:
            gamma = params[og:og + hidden]
            beta = params[oe:oe + hidden]
            if mode == MODE_INFER:
                _bn_apply_into(z, gamma, beta, running[STAT_MEAN, layer], running[STAT_VAR, layer], eps,
                               vec[VEC_INV, layer], xh, out)
            else:
                _bn_stats_into(z, vec[VEC_MEAN, layer], vec[VEC_VAR, layer])
                _bn_apply_into(z, gamma, beta, vec[VEC_MEAN, layer], vec[VEC_VAR, layer], eps,
                               vec[VEC_INV, layer], xh, out)
                if mode == MODE_TRAIN:
                    _running_update(running[STAT_MEAN, layer], running[STAT_VAR, layer], vec[VEC_MEAN, layer],
                                    vec[VEC_VAR, layer], m, coef[COEF_BN_MOMENTUM])
            _act_inplace(out, act)
        elif norm in (NORM_LAYER, NORM_GROUP):
            groups = 1 if norm == NORM_LAYER else ints[INT_GROUPS]
            _gn_into(z, params[og:og + hidden], params[oe:oe + hidden], groups, eps, hid[HID_INV, layer], xh,
                     out)
            _act_inplace(out, act)
        elif norm == NORM_SWITCHABLE:
            ol = offs[layer, SLOT_LAMBDA_MEAN]
            ov = offs[layer, SLOT_LAMBDA_VAR]
            _softmax2_into(params[ol:ol + 2], lamw[STAT_MEAN, layer])
            _softmax2_into(params[ov:ov + 2], lamw[STAT_VAR, layer])
            mu_l = rows[ROW_MEAN, layer, :m]
            var_l = rows[ROW_VAR, layer, :m]
            _row_stats_into(z, mu_l, var_l)
            if mode == MODE_INFER:
                mu_b = running[STAT_MEAN, layer]
                var_b = running[STAT_VAR, layer]
            else:
                mu_b = vec[VEC_MEAN, layer]
                var_b = vec[VEC_VAR, layer]
                _bn_stats_into(z, mu_b, var_b)
                if mode == MODE_TRAIN:
                    _running_update(running[STAT_MEAN, layer], running[STAT_VAR, layer], mu_b, var_b, m,
                                    coef[COEF_BN_MOMENTUM])
            _sn_apply_into(z, params[og:og + hidden], params[oe:oe + hidden], lamw[STAT_MEAN, layer],
                           lamw[STAT_VAR, layer], mu_b, var_b, mu_l, var_l, eps, hid[HID_INV, layer, :m],
                           xh, out)
            _act_inplace(out, act)
        else:
            _act_forward_into(z, act, out)
        a = out
        din = hidden
    lg = ws.logits[:m]
    np.dot(a, _mat(params, offs[layers, SLOT_W], hidden, classes), lg)
    ob = offs[layers, SLOT_B]
    _add_bias(lg, params[ob:ob + classes])


@njit(**JIT)
def _backward(ws, a0, m):
    """Backward pass after a training forward; ws.logits[:m] holds dloss/dlogits. Fills ws.grads."""
    params, grads, offs, ints = ws.params, ws.grads, ws.offs, ws.ints
    hid, vec, rows, lamw, dbuf = ws.hid, ws.vec, ws.rows, ws.lamw, ws.dbuf
    layers = ints[INT_LAYERS]
    hidden = ints[INT_HIDDEN]
    classes = ints[INT_CLASSES]
    norm = ints[INT_NORM]
    act = ints[INT_ACTIVATION]
    dl = ws.logits[:m]
    o = offs[layers, SLOT_W]
    ob = offs[layers, SLOT_B]
    np.dot(hid[HID_OUT, layers - 1, :m].T, dl, _mat(grads, o, hidden, classes))
    _col_sum_into(dl, grads[ob:ob + classes])
    # d holds dloss/da of the current layer; the norms' backward writes dz into the other buffer
    # (distinct arrays let the element loops vectorize), which then feeds the next dloss/da
    cur = 0
    d = dbuf[cur, :m]
    np.dot(dl, _mat(params, o, hidden, classes).T, d)
    for layer in range(layers - 1, -1, -1):
        _act_backward_inplace(d, hid[HID_OUT, layer, :m], act)
        og = offs[layer, SLOT_GAMMA]
        oe = offs[layer, SLOT_BETA]
        zi = 1 - cur if norm in (NORM_BATCH, NORM_LAYER, NORM_GROUP, NORM_SWITCHABLE) else cur
        dz = dbuf[zi, :m]
        if norm == NORM_BATCH:
            _bn_backward_into(d, hid[HID_XHAT, layer, :m], params[og:og + hidden], vec[VEC_INV, layer], dz,
                              grads[og:og + hidden], grads[oe:oe + hidden])
        elif norm in (NORM_LAYER, NORM_GROUP):
            groups = 1 if norm == NORM_LAYER else ints[INT_GROUPS]
            _gn_backward_into(d, hid[HID_XHAT, layer, :m], params[og:og + hidden], hid[HID_INV, layer],
                              groups, dz, grads[og:og + hidden], grads[oe:oe + hidden])
        elif norm == NORM_SWITCHABLE:
            ol = offs[layer, SLOT_LAMBDA_MEAN]
            ov = offs[layer, SLOT_LAMBDA_VAR]
            _sn_backward_into(d, hid[HID_Z, layer, :m], hid[HID_XHAT, layer, :m], hid[HID_INV, layer, :m],
                              params[og:og + hidden], lamw[STAT_MEAN, layer], lamw[STAT_VAR, layer],
                              vec[VEC_MEAN, layer], vec[VEC_VAR, layer], rows[ROW_MEAN, layer, :m],
                              rows[ROW_VAR, layer, :m], vec[VEC_SCRATCH_A, layer], vec[VEC_SCRATCH_B, layer],
                              rows[ROW_SCRATCH_A, layer, :m], rows[ROW_SCRATCH_B, layer, :m], dz,
                              grads[og:og + hidden], grads[oe:oe + hidden], grads[ol:ol + 2],
                              grads[ov:ov + 2])
        ob = offs[layer, SLOT_B]
        if ob >= 0:
            _col_sum_into(dz, grads[ob:ob + hidden])
        din = ints[INT_FEATURES] if layer == 0 else hidden
        a_in = a0 if layer == 0 else hid[HID_OUT, layer - 1, :m]
        o = offs[layer, SLOT_W]
        dw = _mat(grads, o, din, hidden)
        np.dot(a_in.T, dz, dw)
        if norm == NORM_WEIGHT:
            ogn = offs[layer, SLOT_G]
            _wn_backward_into(dw, _mat(params, o, din, hidden), params[ogn:ogn + hidden],
                              vec[VEC_NORMS, layer], dw, grads[ogn:ogn + hidden])
        if layer > 0:
            # dz lives in one buffer; write the next layer's dloss/da into the other
            cur = 1 - zi
            d = dbuf[cur, :m]
            np.dot(dz, _weight(ws, layer, din, hidden).T, d)


@njit(**JIT)
def _check(ws, X, rows, training):
    """Refuse data of the wrong width, more rows per pass than the buffers hold, or an inference
    workspace where gradients are needed: the kernels index without bounds checks."""
    if X.shape[1] != ws.ints[INT_FEATURES]:
        raise ValueError("X does not have the network's number of features")
    if rows > ws.logits.shape[0]:
        raise ValueError("the workspace holds fewer rows than one pass needs")
    if training and (ws.grads.shape[0] != ws.params.shape[0] or ws.xb.shape[0] < rows):
        raise ValueError("training needs a workspace built with training=True")


@njit(**JIT)
def train_epoch(ws, X, y, batch, seed):
    """One epoch: shuffle, then for each mini-batch gather, forward, backward and update.

    Mini-batches are consecutive slices of a permutation drawn from numba's generator seeded
    with ``seed``. A last partial batch of one sample is merged into the previous batch, so no
    batch statistic is ever taken over a single sample; the workspace needs ``batch + 1`` rows.

    Args:
        ws: a training :class:`Workspace` of at least ``batch + 1`` rows; its parameters,
            optimizer state, step count and running statistics are updated.
        X: (n, features) training inputs, C-contiguous. y: (n,) int64 labels.
        batch: mini-batch size (≤ n). seed: shuffle seed of this epoch.

    Returns:
        The mean training loss over the epoch's samples, or NaN as soon as a batch loss is not finite.
    """
    _check(ws, X, batch + 1, True)
    n = X.shape[0]
    features = X.shape[1]
    xb, yb = ws.xb, ws.yb
    np.random.seed(seed)
    perm = np.random.permutation(n)
    full = n // batch
    rest = n - full * batch
    nbatches = full if rest <= 1 else full + 1
    step = ws.step[0]
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
        prepare_weights(ws)
        _forward(ws, a0, m, MODE_TRAIN)
        lg = ws.logits[:m]
        loss = _softmax_ce_into(lg, yb[:m], lg)
        if not np.isfinite(loss):
            ws.step[0] = step
            return np.nan
        _backward(ws, a0, m)
        step += 1
        optimizer_step(ws.params, ws.grads, ws.m1, ws.m2, step, ws.ints[INT_OPTIMIZER], ws.coef)
        total += loss * m
        start += m
    ws.step[0] = step
    return total / n


@njit(**JIT)
def evaluate(ws, X, y):
    """Inference-mode mean cross-entropy and accuracy over (X, y), in chunks of the workspace's rows.

    Returns:
        (mean loss, accuracy in [0, 1]).
    """
    _check(ws, X, 0, False)
    n = X.shape[0]
    logits = ws.logits
    chunk = logits.shape[0]
    classes = logits.shape[1]
    prepare_weights(ws)
    total = 0.0
    correct = 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        _forward(ws, X[start:start + m], m, MODE_INFER)
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
def predict(ws, X, out):
    """Inference-mode class probabilities softmax(logits) of X (n, features) into out (n, C)."""
    _check(ws, X, 0, False)
    logits = ws.logits
    n = X.shape[0]
    chunk = logits.shape[0]
    classes = logits.shape[1]
    if out.shape[0] != n or out.shape[1] != classes:
        raise ValueError("out must be (rows of X, classes)")
    prepare_weights(ws)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        _forward(ws, X[start:start + m], m, MODE_INFER)
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
def population_statistics(ws, X, batch):
    """Batch norm's population inference statistics (Ioffe & Szegedy, 2015, Alg. 2), into ``ws.running``.

    With the weights frozen, X is cut in its stored order into ⌊n/batch⌋ full mini-batches
    (the remainder is left out); each goes through the training-mode forward pass (every layer
    normalized by its own batch statistics, as during training). Then per layer and feature
    μ = mean over batches of μ_B and σ² = m/(m−1) · mean over batches of σ²_B (m = batch).
    Only batch and switchable norm have batch statistics; for other norms this does nothing.
    """
    ints = ws.ints
    norm = ints[INT_NORM]
    if norm != NORM_BATCH and norm != NORM_SWITCHABLE:
        return
    _check(ws, X, batch, False)
    n = X.shape[0]
    layers = ints[INT_LAYERS]
    hidden = ints[INT_HIDDEN]
    full = n // batch
    vec, running, acc = ws.vec, ws.running, ws.pop_sum
    acc[:] = 0
    prepare_weights(ws)
    for b in range(full):
        _forward(ws, X[b * batch:(b + 1) * batch], batch, MODE_BATCH_STATS)
        for layer in range(layers):
            for j in range(hidden):
                acc[STAT_MEAN, layer, j] += vec[VEC_MEAN, layer, j]
                acc[STAT_VAR, layer, j] += vec[VEC_VAR, layer, j]
    unbias = batch / (batch - 1.0)
    for layer in range(layers):
        for j in range(hidden):
            running[STAT_MEAN, layer, j] = acc[STAT_MEAN, layer, j] / full
            running[STAT_VAR, layer, j] = unbias * acc[STAT_VAR, layer, j] / full


@njit(**JIT)
def loss_and_grad(ws, Xb, yb):
    """Training-mode loss of one mini-batch (Xb (m, features), yb (m,)) and its gradient into ws.grads.

    The running statistics are updated as in training; the parameters are not.
    """
    m = Xb.shape[0]
    _check(ws, Xb, m, True)
    prepare_weights(ws)
    _forward(ws, Xb, m, MODE_TRAIN)
    lg = ws.logits[:m]
    loss = _softmax_ce_into(lg, yb, lg)
    _backward(ws, Xb, m)
    return loss
