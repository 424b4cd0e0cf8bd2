"""Layer math: paired ``*_forward`` / ``*_backward`` functions and the in-place kernels behind them.

Every public pair follows the cs231n convention: ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> (dx, dparams...)``. The public functions allocate their outputs and call
the ``_..._into`` kernels, which write into preallocated buffers; the fused training loop in
:mod:`core.nn.kernels` calls those same kernels, so a gradient check of a public function checks
the code that trains.

Shapes: ``x`` is ``(N, D)`` (rows are samples, C-contiguous), ``gamma`` and ``beta`` are ``(D,)``.
All arrays of one call share a dtype (float32 or float64); scalar arguments such as ``eps`` are
Python floats. Statistics of a normalization use the biased variance (divide by the count) and
are computed in two passes (mean, then the squared deviations) because ``E[x²] − E[x]²`` cancels
badly in float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "JIT",
    "ACT_RELU",
    "ACT_TANH",
    "ACT_SIGMOID",
    "ACTIVATIONS",
    "MIX_BATCH",
    "MIX_LAYER",
    "dense_forward",
    "dense_backward",
    "relu_forward",
    "relu_backward",
    "tanh_forward",
    "tanh_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "batch_norm_forward",
    "batch_norm_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "group_norm_forward",
    "group_norm_backward",
    "switchable_norm_forward",
    "switchable_norm_backward",
    "weight_norm_forward",
    "weight_norm_backward",
    "softmax_cross_entropy",
]

#: Options of every kernel. ``error_model='numpy'`` removes the division-by-zero branch that stops
#: vectorization; the fastmath subset allows reassociation (vectorized reductions) and FMA
#: contraction but keeps NaN/inf semantics, so divergence is still detected.
JIT = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc", "contract", "nsz"}}

# Codes and slots of core.nn are module-level ints, which numba freezes into the compiled code as
# constants. Its on-disk cache is keyed on the defining file of each kernel only, so a kernel that
# uses another module's constant keeps the old value until its own file changes or the cache is cleared.

#: Activation code of ReLU.
ACT_RELU = 0
#: Activation code of tanh.
ACT_TANH = 1
#: Activation code of the logistic sigmoid.
ACT_SIGMOID = 2
#: Activation codes by configuration name.
ACTIVATIONS = {"relu": ACT_RELU, "tanh": ACT_TANH, "sigmoid": ACT_SIGMOID}

#: Slot of the batch statistics in switchable norm's (batch, layer) pairs: λ, the softmax weights
#: and their gradients.
MIX_BATCH = 0
#: Slot of the layer statistics in switchable norm's (batch, layer) pairs.
MIX_LAYER = 1


# --------------------------------------------------------------------------------------------------
# dense


@njit(**JIT)
def dense_forward(x, w, b):
    """Affine layer ``out = x @ w + b``.

    Args:
        x: (N, D) inputs.
        w: (D, M) weights.
        b: (M,) bias.

    Returns:
        out (N, M) and the cache ``(x, w)``.
    """
    out = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
    np.dot(x, w, out)
    _add_bias(out, b)
    return out, (x, w)


@njit(**JIT)
def dense_backward(dout, cache):
    """Backward of :func:`dense_forward`.

    Args:
        dout: (N, M) upstream gradient.
        cache: ``(x, w)`` from the forward pass.

    Returns:
        dx (N, D), dw (D, M), db (M,).
    """
    x, w = cache
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.empty(w.shape[1], dtype=x.dtype)
    np.dot(dout, w.T, dx)
    np.dot(x.T, dout, dw)
    _col_sum_into(dout, db)
    return dx, dw, db


@njit(**JIT)
def _add_bias(out, b):
    """out[i, :] += b for every row (in place). out (N, M), b (M,)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += b[j]


@njit(**JIT)
def _col_sum_into(a, out):
    """out[j] = Σ_i a[i, j]. a (N, M), out (M,)."""
    out[:] = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]


# --------------------------------------------------------------------------------------------------
# activations: the backward needs only the forward's output a


@njit(**JIT)
def _act_forward_into(z, kind, a):
    """a = f(z) for activation code ``kind`` (:data:`ACTIVATIONS`). z, a (N, D); may alias."""
    one = z.dtype.type(1)
    zero = z.dtype.type(0)
    n, d = z.shape
    if kind == ACT_RELU:
        for i in range(n):
            for j in range(d):
                v = z[i, j]
                a[i, j] = v if v > zero else zero
    elif kind == ACT_TANH:
        for i in range(n):
            for j in range(d):
                a[i, j] = np.tanh(z[i, j])
    else:
        for i in range(n):
            for j in range(d):
                a[i, j] = one / (one + np.exp(-z[i, j]))


@njit(**JIT)
def _act_inplace(a, kind):
    """a = f(a) in place: one array, so the loop vectorizes without aliasing checks."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    n, d = a.shape
    if kind == ACT_RELU:
        for i in range(n):
            for j in range(d):
                v = a[i, j]
                a[i, j] = v if v > zero else zero
    elif kind == ACT_TANH:
        for i in range(n):
            for j in range(d):
                a[i, j] = np.tanh(a[i, j])
    else:
        for i in range(n):
            for j in range(d):
                a[i, j] = one / (one + np.exp(-a[i, j]))


@njit(**JIT)
def _act_backward_inplace(da, a, kind):
    """da *= f'(z), written from the output a = f(z). da, a (N, D)."""
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    n, d = a.shape
    if kind == ACT_RELU:
        for i in range(n):
            for j in range(d):
                if a[i, j] <= zero:
                    da[i, j] = zero
    elif kind == ACT_TANH:
        for i in range(n):
            for j in range(d):
                v = a[i, j]
                da[i, j] *= one - v * v
    else:
        for i in range(n):
            for j in range(d):
                v = a[i, j]
                da[i, j] *= v * (one - v)


@njit(**JIT)
def _act_forward(x, kind):
    out = np.empty_like(x)
    _act_forward_into(x, kind, out)
    return out, out


@njit(**JIT)
def _act_backward(dout, cache, kind):
    dx = dout.copy()
    _act_backward_inplace(dx, cache, kind)
    return dx


@njit(**JIT)
def relu_forward(x):
    """ReLU. x (N, D) -> out (N, D); the cache is out."""
    return _act_forward(x, ACT_RELU)


@njit(**JIT)
def relu_backward(dout, cache):
    """Backward of :func:`relu_forward`. dout (N, D) -> dx (N, D)."""
    return _act_backward(dout, cache, ACT_RELU)


@njit(**JIT)
def tanh_forward(x):
    """tanh. x (N, D) -> out (N, D); the cache is out."""
    return _act_forward(x, ACT_TANH)


@njit(**JIT)
def tanh_backward(dout, cache):
    """Backward of :func:`tanh_forward`. dout (N, D) -> dx (N, D)."""
    return _act_backward(dout, cache, ACT_TANH)


@njit(**JIT)
def sigmoid_forward(x):
    """Logistic sigmoid. x (N, D) -> out (N, D); the cache is out."""
    return _act_forward(x, ACT_SIGMOID)


@njit(**JIT)
def sigmoid_backward(dout, cache):
    """Backward of :func:`sigmoid_forward`. dout (N, D) -> dx (N, D)."""
    return _act_backward(dout, cache, ACT_SIGMOID)


# --------------------------------------------------------------------------------------------------
# batch norm


@njit(**JIT)
def _bn_stats_into(z, mean, var):
    """Batch mean and biased variance per feature (two passes). z (N, D); mean, var (D,)."""
    n, d = z.shape
    mean[:] = 0
    for i in range(n):
        for j in range(d):
            mean[j] += z[i, j]
    for j in range(d):
        mean[j] /= n
    var[:] = 0
    for i in range(n):
        for j in range(d):
            c = z[i, j] - mean[j]
            var[j] += c * c
    for j in range(d):
        var[j] /= n


@njit(**JIT)
def _bn_apply_into(z, gamma, beta, mean, var, eps, inv, xhat, y):
    """inv = 1/√(var+eps); xhat = (z−mean)·inv; y = gamma·xhat + beta. z, xhat, y (N, D); rest (D,)."""
    n, d = z.shape
    for j in range(d):
        inv[j] = 1.0 / np.sqrt(var[j] + eps)
    for i in range(n):
        for j in range(d):
            h = (z[i, j] - mean[j]) * inv[j]
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


@njit(**JIT)
def _bn_backward_into(dy, xhat, gamma, inv, dz, dgamma, dbeta):
    """dz = gamma·inv·(dy − (Σdy + xhat·Σ(dy·xhat))/m); dgamma, dbeta overwritten.

    dz may alias dy, but a distinct dz lets the element loop vectorize.
    """
    n, d = dy.shape
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(n):
        for j in range(d):
            g = dy[i, j]
            dbeta[j] += g
            dgamma[j] += g * xhat[i, j]
    rm = dy.dtype.type(1.0 / n)  # keep the element loop in the arrays' dtype
    for i in range(n):
        for j in range(d):
            dz[i, j] = gamma[j] * inv[j] * (dy[i, j] - (dbeta[j] + xhat[i, j] * dgamma[j]) * rm)


@njit(**JIT)
def batch_norm_forward(x, gamma, beta, eps):
    """Batch norm in training mode (batch statistics, biased variance).

    Args:
        x: (N, D) inputs, N ≥ 2.
        gamma: (D,) scale.
        beta: (D,) shift.
        eps: added to the variance.

    Returns:
        out (N, D) and the cache ``(xhat, gamma, inv, mean, var)`` with inv, mean, var (D,).
    """
    n, d = x.shape
    mean = np.empty(d, dtype=x.dtype)
    var = np.empty(d, dtype=x.dtype)
    inv = np.empty(d, dtype=x.dtype)
    xhat = np.empty_like(x)
    out = np.empty_like(x)
    _bn_stats_into(x, mean, var)
    _bn_apply_into(x, gamma, beta, mean, var, eps, inv, xhat, out)
    return out, (xhat, gamma, inv, mean, var)


@njit(**JIT)
def batch_norm_backward(dout, cache):
    """Backward of :func:`batch_norm_forward`.

    Args:
        dout: (N, D) upstream gradient.
        cache: from the forward pass.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,).
    """
    xhat, gamma, inv, _, _ = cache
    d = dout.shape[1]
    dx = np.empty_like(dout)
    dgamma = np.empty(d, dtype=dout.dtype)
    dbeta = np.empty(d, dtype=dout.dtype)
    _bn_backward_into(dout, xhat, gamma, inv, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------------------------------
# group norm (layer norm is the case groups = 1)


@njit(**JIT)
def _gn_into(z, gamma, beta, groups, eps, inv, xhat, y):
    """Group norm: per sample, statistics over each of ``groups`` equal slices of the D features.

    z, xhat, y (N, D); gamma, beta (D,); inv (N, groups) receives 1/√(σ²+eps).
    """
    n, d = z.shape
    size = d // groups
    t = z.dtype.type  # scalars in the arrays' dtype keep the element loops in float32
    rsize = t(1.0 / size)
    for i in range(n):
        for g in range(groups):
            lo = g * size
            # views per group: loops from 0 let numba drop negative-index checks and vectorize
            zr = z[i, lo:lo + size]
            gr = gamma[lo:lo + size]
            br = beta[lo:lo + size]
            xr = xhat[i, lo:lo + size]
            yr = y[i, lo:lo + size]
            s = t(0)
            for k in range(size):
                s += zr[k]
            mu = s * rsize
            s2 = t(0)
            for k in range(size):
                c = zr[k] - mu
                s2 += c * c
            iv = t(1.0 / np.sqrt(s2 * rsize + eps))
            inv[i, g] = iv
            for k in range(size):
                h = (zr[k] - mu) * iv
                xr[k] = h
                yr[k] = gr[k] * h + br[k]


@njit(**JIT)
def _gn_backward_into(dy, xhat, gamma, inv, groups, dz, dgamma, dbeta):
    """dz = (inv/n)·(n·dxh − Σdxh − xhat·Σ(dxh·xhat)) per group, dxh = dy·gamma. dz may alias dy."""
    n, d = dy.shape
    size = d // groups
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(n):
        for j in range(d):
            g = dy[i, j]
            dbeta[j] += g
            dgamma[j] += g * xhat[i, j]
    fsize = dy.dtype.type(size)
    for i in range(n):
        for g in range(groups):
            lo = g * size
            dr = dy[i, lo:lo + size]
            xr = xhat[i, lo:lo + size]
            gr = gamma[lo:lo + size]
            zr = dz[i, lo:lo + size]
            s1 = dy.dtype.type(0)
            s2 = dy.dtype.type(0)
            for k in range(size):
                h = dr[k] * gr[k]
                s1 += h
                s2 += h * xr[k]
            iv = inv[i, g] / fsize
            for k in range(size):
                zr[k] = iv * (fsize * dr[k] * gr[k] - s1 - xr[k] * s2)


@njit(**JIT)
def group_norm_forward(x, gamma, beta, groups, eps):
    """Group norm over groups of features (training and inference alike).

    Args:
        x: (N, D) inputs; ``groups`` must divide D.
        gamma: (D,) scale.
        beta: (D,) shift.
        groups: number of groups G.
        eps: added to the variance.

    Returns:
        out (N, D) and the cache ``(xhat, gamma, inv, groups)`` with inv (N, G).
    """
    n, d = x.shape
    inv = np.empty((n, groups), dtype=x.dtype)
    xhat = np.empty_like(x)
    out = np.empty_like(x)
    _gn_into(x, gamma, beta, groups, eps, inv, xhat, out)
    return out, (xhat, gamma, inv, groups)


@njit(**JIT)
def group_norm_backward(dout, cache):
    """Backward of :func:`group_norm_forward`. dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,)."""
    xhat, gamma, inv, groups = cache
    d = dout.shape[1]
    dx = np.empty_like(dout)
    dgamma = np.empty(d, dtype=dout.dtype)
    dbeta = np.empty(d, dtype=dout.dtype)
    _gn_backward_into(dout, xhat, gamma, inv, groups, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


@njit(**JIT)
def layer_norm_forward(x, gamma, beta, eps):
    """Layer norm: per-sample statistics over the D features (training and inference alike).

    Args:
        x: (N, D) inputs.
        gamma: (D,) scale.
        beta: (D,) shift.
        eps: added to the variance.

    Returns:
        out (N, D) and the cache ``(xhat, gamma, inv, 1)`` with inv (N, 1).
    """
    return group_norm_forward(x, gamma, beta, 1, eps)


@njit(**JIT)
def layer_norm_backward(dout, cache):
    """Backward of :func:`layer_norm_forward`. dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,)."""
    return group_norm_backward(dout, cache)


# --------------------------------------------------------------------------------------------------
# switchable norm (Luo et al., 2019) for a fully-connected layer: batch and layer statistics


@njit(**JIT)
def _softmax2_into(lam, w):
    """w = softmax(lam) for a pair. lam, w (2,)."""
    m = max(lam[0], lam[1])
    e0 = np.exp(lam[0] - m)
    e1 = np.exp(lam[1] - m)
    w[0] = e0 / (e0 + e1)
    w[1] = e1 / (e0 + e1)


@njit(**JIT)
def _row_stats_into(z, mu, var):
    """Per-sample mean and biased variance over the features. z (N, D); mu, var (N,)."""
    n, d = z.shape
    rd = z.dtype.type(1.0 / d)
    for i in range(n):
        s = z.dtype.type(0)
        for j in range(d):
            s += z[i, j]
        m = s * rd
        s2 = z.dtype.type(0)
        for j in range(d):
            c = z[i, j] - m
            s2 += c * c
        mu[i] = m
        var[i] = s2 * rd


@njit(**JIT)
def _sn_apply_into(z, gamma, beta, wm, wv, mu_b, var_b, mu_l, var_l, eps, inv, xhat, y):
    """Mix batch (D,) and layer (N,) statistics with weights wm, wv (2,) and normalize.

    With b = :data:`MIX_BATCH` and l = :data:`MIX_LAYER`:
    mu = wm[b]·mu_b[j] + wm[l]·mu_l[i]; var = wv[b]·var_b[j] + wv[l]·var_l[i];
    inv (N, D) = 1/√(var+eps); xhat = (z−mu)·inv; y = gamma·xhat + beta.
    """
    n, d = z.shape
    one = z.dtype.type(1)
    e = z.dtype.type(eps)
    for i in range(n):
        ml = wm[MIX_LAYER] * mu_l[i]
        vl = wv[MIX_LAYER] * var_l[i] + e
        for j in range(d):
            iv = one / np.sqrt(wv[MIX_BATCH] * var_b[j] + vl)
            h = (z[i, j] - (wm[MIX_BATCH] * mu_b[j] + ml)) * iv
            inv[i, j] = iv
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


@njit(**JIT)
def _sn_backward_into(dy, z, xhat, inv, gamma, wm, wv, mu_b, var_b, mu_l, var_l,
                      col_a, col_b, row_a, row_b, dz, dgamma, dbeta, dlam_mean, dlam_var):
    """Backward of switchable norm in training mode. dz may alias dy.

    With dxh = dy·gamma, dmu = −dxh·inv and dvar = −½·dxh·xhat·inv² per element, the gradient
    reaches z directly (dxh·inv), through mu_b and mu_l (their means: 1/N and 1/D per element)
    and through var_b and var_l (2(z − mu_k)/count; the mean's own term vanishes). col_a, col_b (D,)
    and row_a, row_b (N,) are scratch for Σ dmu and Σ dvar per feature and per sample.
    """
    n, d = dy.shape
    dgamma[:] = 0
    dbeta[:] = 0
    col_a[:] = 0
    col_b[:] = 0
    half = dy.dtype.type(0.5)
    for i in range(n):
        r_mu = dy.dtype.type(0)
        r_var = dy.dtype.type(0)
        for j in range(d):
            g = dy[i, j]
            h = xhat[i, j]
            dbeta[j] += g
            dgamma[j] += g * h
            iv = inv[i, j]
            dmu = -g * gamma[j] * iv
            dvar = dmu * h * iv * half
            col_a[j] += dmu
            col_b[j] += dvar
            r_mu += dmu
            r_var += dvar
        row_a[i] = r_mu
        row_b[i] = r_var
    dwm0 = 0.0
    dwm1 = 0.0
    dwv0 = 0.0
    dwv1 = 0.0
    for j in range(d):
        dwm0 += col_a[j] * mu_b[j]
        dwv0 += col_b[j] * var_b[j]
    for i in range(n):
        dwm1 += row_a[i] * mu_l[i]
        dwv1 += row_b[i] * var_l[i]
    # turn the column sums into the per-feature coefficients of the second pass
    t = dy.dtype.type
    cm = t(wm[MIX_BATCH] / n)
    cv = t(2.0 * wv[MIX_BATCH] / n)
    for j in range(d):
        col_a[j] = cm * col_a[j]
        col_b[j] = cv * col_b[j]
    for i in range(n):
        a_l = t(wm[MIX_LAYER] * row_a[i] / d)
        v_l = t(2.0 * wv[MIX_LAYER] * row_b[i] / d)
        ml = mu_l[i]
        for j in range(d):
            zij = z[i, j]
            dz[i, j] = (dy[i, j] * gamma[j] * inv[i, j] + a_l + col_a[j]
                        + col_b[j] * (zij - mu_b[j]) + v_l * (zij - ml))
    # softmax backward: dλ_k = w_k·(dw_k − Σ_k' w_k'·dw_k')
    sm = wm[MIX_BATCH] * dwm0 + wm[MIX_LAYER] * dwm1
    dlam_mean[MIX_BATCH] = wm[MIX_BATCH] * (dwm0 - sm)
    dlam_mean[MIX_LAYER] = wm[MIX_LAYER] * (dwm1 - sm)
    sv = wv[MIX_BATCH] * dwv0 + wv[MIX_LAYER] * dwv1
    dlam_var[MIX_BATCH] = wv[MIX_BATCH] * (dwv0 - sv)
    dlam_var[MIX_LAYER] = wv[MIX_LAYER] * (dwv1 - sv)


@njit(**JIT)
def switchable_norm_forward(x, gamma, beta, lam_mean, lam_var, eps):
    """Switchable norm (training mode) for a fully-connected layer.

    The mean is ``softmax(lam_mean)·(batch mean, layer mean)`` and the variance
    ``softmax(lam_var)·(batch variance, layer variance)``: a fully-connected layer has batch and
    layer statistics only (instance statistics need spatial positions).

    Args:
        x: (N, D) inputs, N ≥ 2.
        gamma: (D,) scale.
        beta: (D,) shift.
        lam_mean: (2,) logits of the mean's weights (batch, layer).
        lam_var: (2,) logits of the variance's weights (batch, layer).
        eps: added to the variance.

    Returns:
        out (N, D) and the cache ``(x, xhat, inv, gamma, wm, wv, mu_b, var_b, mu_l, var_l)``.
    """
    n, d = x.shape
    wm = np.empty(2, dtype=x.dtype)
    wv = np.empty(2, dtype=x.dtype)
    _softmax2_into(lam_mean, wm)
    _softmax2_into(lam_var, wv)
    mu_b = np.empty(d, dtype=x.dtype)
    var_b = np.empty(d, dtype=x.dtype)
    mu_l = np.empty(n, dtype=x.dtype)
    var_l = np.empty(n, dtype=x.dtype)
    _bn_stats_into(x, mu_b, var_b)
    _row_stats_into(x, mu_l, var_l)
    inv = np.empty_like(x)
    xhat = np.empty_like(x)
    out = np.empty_like(x)
    _sn_apply_into(x, gamma, beta, wm, wv, mu_b, var_b, mu_l, var_l, eps, inv, xhat, out)
    return out, (x, xhat, inv, gamma, wm, wv, mu_b, var_b, mu_l, var_l)


@njit(**JIT)
def switchable_norm_backward(dout, cache):
    """Backward of :func:`switchable_norm_forward`.

    Args:
        dout: (N, D) upstream gradient.
        cache: from the forward pass.

    Returns:
        dx (N, D), dgamma (D,), dbeta (D,), dlam_mean (2,), dlam_var (2,).
    """
    x, xhat, inv, gamma, wm, wv, mu_b, var_b, mu_l, var_l = cache
    n, d = dout.shape
    dx = np.empty_like(dout)
    dgamma = np.empty(d, dtype=dout.dtype)
    dbeta = np.empty(d, dtype=dout.dtype)
    dlm = np.empty(2, dtype=dout.dtype)
    dlv = np.empty(2, dtype=dout.dtype)
    _sn_backward_into(dout, x, xhat, inv, gamma, wm, wv, mu_b, var_b, mu_l, var_l,
                      np.empty(d, dtype=dout.dtype), np.empty(d, dtype=dout.dtype),
                      np.empty(n, dtype=dout.dtype), np.empty(n, dtype=dout.dtype),
                      dx, dgamma, dbeta, dlm, dlv)
    return dx, dgamma, dbeta, dlm, dlv


# --------------------------------------------------------------------------------------------------
# weight norm: w = g·v/‖v‖ per output unit (a column of the (in, out) weight matrix)


@njit(**JIT)
def _wn_weight_into(v, g, norms, w):
    """norms[j] = ‖v[:, j]‖; w[:, j] = g[j]·v[:, j]/norms[j]. v, w (D, M); g, norms (M,)."""
    din, dout = v.shape
    norms[:] = 0
    for i in range(din):
        for j in range(dout):
            norms[j] += v[i, j] * v[i, j]
    for j in range(dout):
        norms[j] = np.sqrt(norms[j])
    for i in range(din):
        for j in range(dout):
            w[i, j] = g[j] * v[i, j] / norms[j]


@njit(**JIT)
def _wn_backward_into(dw, v, g, norms, dv, dg):
    """dg = ⟨dw, v⟩/‖v‖ per column; dv = (g/‖v‖)·(dw − (dg/‖v‖)·v). dv may alias dw."""
    din, dout = v.shape
    dg[:] = 0
    for i in range(din):
        for j in range(dout):
            dg[j] += dw[i, j] * v[i, j]
    for j in range(dout):
        dg[j] /= norms[j]
    for i in range(din):
        for j in range(dout):
            dv[i, j] = (g[j] / norms[j]) * (dw[i, j] - (dg[j] / norms[j]) * v[i, j])


@njit(**JIT)
def weight_norm_forward(v, g):
    """Weight normalization of a (D, M) weight matrix, one g per output column.

    Args:
        v: (D, M) direction parameters.
        g: (M,) lengths.

    Returns:
        w (D, M) with ‖w[:, j]‖ = g[j], and the cache ``(v, g, norms)`` with norms (M,).
    """
    norms = np.empty(v.shape[1], dtype=v.dtype)
    w = np.empty_like(v)
    _wn_weight_into(v, g, norms, w)
    return w, (v, g, norms)


@njit(**JIT)
def weight_norm_backward(dw, cache):
    """Backward of :func:`weight_norm_forward`. dw (D, M) -> dv (D, M), dg (M,)."""
    v, g, norms = cache
    dv = np.empty_like(v)
    dg = np.empty_like(g)
    _wn_backward_into(dw, v, g, norms, dv, dg)
    return dv, dg


# --------------------------------------------------------------------------------------------------
# softmax + cross-entropy


@njit(**JIT)
def _softmax_ce_into(logits, labels, dlogits):
    """Mean cross-entropy of softmax(logits) and its gradient (softmax − onehot)/N.

    Computed with the log-sum-exp shift, so large logits neither overflow nor give NaN.
    logits, dlogits (N, C) (may alias); labels (N,) int64. Returns the loss (float64).
    """
    n, c = logits.shape
    total = 0.0
    inv_n = logits.dtype.type(1.0 / n)
    for i in range(n):
        m = logits[i, 0]
        for k in range(1, c):
            if logits[i, k] > m:
                m = logits[i, k]
        y = labels[i]
        zy = logits[i, y] - m  # read before dlogits (which may alias logits) is written
        s = logits.dtype.type(0)
        for k in range(c):
            e = np.exp(logits[i, k] - m)
            dlogits[i, k] = e
            s += e
        total += np.log(s) - zy
        r = inv_n / s
        for k in range(c):
            dlogits[i, k] *= r
        dlogits[i, y] -= inv_n
    return total / n


@njit(**JIT)
def softmax_cross_entropy(logits, labels):
    """Softmax with mean cross-entropy.

    Args:
        logits: (N, C) scores.
        labels: (N,) int64 class indices in 0..C−1.

    Returns:
        loss (float: mean over the batch of logsumexp(z) − z_y) and dlogits (N, C) = (ŷ − y)/N.
    """
    dlogits = np.empty_like(logits)
    loss = _softmax_ce_into(logits, labels, dlogits)
    return loss, dlogits
