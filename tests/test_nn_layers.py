"""Layer math of core.nn: centered-difference gradient checks in float64, and PyTorch as an oracle.

Each check differentiates the scalar ``sum(out * R)`` (R random) numerically and compares it with
the analytic backward: relative error ‖a − n‖ / max(‖a‖, ‖n‖) < 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from core import nn

H = 1e-6
TOL = 1e-6


def numeric_grad(f: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """Centered differences of f() with respect to every entry of x (perturbed in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return grad


def rel_error(a: np.ndarray, n: np.ndarray) -> float:
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(n))
    assert scale > 1e-8, "gradient is zero: the check would not test anything"
    return float(np.linalg.norm(a - n) / scale)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def check(forward: Callable, backward: Callable, inputs: list[np.ndarray], rng: np.random.Generator,
          extra: tuple = ()) -> None:
    """Gradient-check ``forward(*inputs, *extra) -> (out, cache)`` against ``backward(dout, cache)``."""
    out, cache = forward(*inputs, *extra)
    R = rng.standard_normal(out.shape)
    grads = backward(R, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(inputs)
    for x, g in zip(inputs, grads, strict=True):
        num = numeric_grad(lambda: float(np.sum(forward(*inputs, *extra)[0] * R)), x)
        assert rel_error(g, num) < TOL


def test_dense_gradient(rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    check(nn.dense_forward, nn.dense_backward, [x, w, b], rng)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activation_gradient(name, rng):
    x = rng.standard_normal((6, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    fwd, bwd = getattr(nn, f"{name}_forward"), getattr(nn, f"{name}_backward")
    check(fwd, bwd, [x], rng)


def test_batch_norm_gradient(rng):
    x = rng.standard_normal((8, 5)) * 3 + 1
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    check(nn.batch_norm_forward, nn.batch_norm_backward, [x, gamma, beta], rng, (1e-5,))


def test_layer_norm_gradient(rng):
    x = rng.standard_normal((6, 7)) * 2 - 1
    gamma, beta = rng.standard_normal(7), rng.standard_normal(7)
    check(nn.layer_norm_forward, nn.layer_norm_backward, [x, gamma, beta], rng, (1e-5,))


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_norm_gradient(groups, rng):
    x = rng.standard_normal((5, 8)) * 2 + 0.5
    gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
    check(nn.group_norm_forward, nn.group_norm_backward, [x, gamma, beta], rng, (groups, 1e-5))


def test_switchable_norm_gradient(rng):
    x = rng.standard_normal((6, 5)) * 2 + 0.3
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    lam_mean, lam_var = rng.standard_normal(2), rng.standard_normal(2)
    check(nn.switchable_norm_forward, nn.switchable_norm_backward, [x, gamma, beta, lam_mean, lam_var], rng,
          (1e-5,))


def test_switchable_norm_limits_are_batch_and_layer_norm(rng):
    """With all weight on one kind of statistics, switchable norm is batch norm or layer norm."""
    x = rng.standard_normal((6, 5))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    big = np.array([40.0, -40.0])
    sn_b, _ = nn.switchable_norm_forward(x, gamma, beta, big, big, 1e-5)
    sn_l, _ = nn.switchable_norm_forward(x, gamma, beta, -big, -big, 1e-5)
    np.testing.assert_allclose(sn_b, nn.batch_norm_forward(x, gamma, beta, 1e-5)[0], atol=1e-12)
    np.testing.assert_allclose(sn_l, nn.layer_norm_forward(x, gamma, beta, 1e-5)[0], atol=1e-12)


def test_weight_norm_gradient_and_lengths(rng):
    v, g = rng.standard_normal((4, 3)), rng.uniform(0.5, 2.0, 3)
    check(nn.weight_norm_forward, nn.weight_norm_backward, [v, g], rng)
    w, _ = nn.weight_norm_forward(v, g)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), g, rtol=1e-12)


def test_softmax_cross_entropy_gradient_and_value(rng):
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    loss, dz = nn.softmax_cross_entropy(z, y)
    num = numeric_grad(lambda: nn.softmax_cross_entropy(z, y)[0], z)
    assert rel_error(dz, num) < TOL
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(y))
    assert loss == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 0.0, 1000.0]], dtype=dtype)
    loss, dz = nn.softmax_cross_entropy(z, np.array([0, 0], dtype=np.int64))
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    assert loss == pytest.approx(1000.0, rel=1e-6)  # first row: 0, second row: 2000
    np.testing.assert_allclose(dz, [[0, 0, 0], [-0.5, 0, 0.5]], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# PyTorch as an oracle for the normalizations' forward and backward


def torch_reference(fn: Callable, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dout: np.ndarray):
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    out = fn(tx, tg, tb)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize(
    "kind",
    ["batch", "layer", "group1", "group3"],
)
def test_norms_match_pytorch(kind, rng):
    x = rng.standard_normal((10, 6)) * 2 + 1
    gamma, beta, dout = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal((10, 6))
    F = torch.nn.functional
    if kind == "batch":
        ours = nn.batch_norm_forward(x, gamma, beta, 1e-5)
        back = nn.batch_norm_backward
        ref = torch_reference(lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True, eps=1e-5),
                              x, gamma, beta, dout)
    elif kind == "layer":
        ours = nn.layer_norm_forward(x, gamma, beta, 1e-5)
        back = nn.layer_norm_backward
        ref = torch_reference(lambda a, g, b: F.layer_norm(a, (6,), g, b, eps=1e-5), x, gamma, beta, dout)
    else:
        groups = int(kind[-1])
        ours = nn.group_norm_forward(x, gamma, beta, groups, 1e-5)
        back = nn.group_norm_backward
        ref = torch_reference(lambda a, g, b: F.group_norm(a, groups, g, b, eps=1e-5), x, gamma, beta, dout)
    out, cache = ours
    dx, dgamma, dbeta = back(dout, cache)
    for mine, theirs in zip((out, dx, dgamma, dbeta), ref, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-10)


def test_float32_layers_stay_float32(rng):
    x = rng.standard_normal((8, 4)).astype(np.float32)
    g, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, cache = nn.batch_norm_forward(x, g, b, 1e-5)
    dx, dg, db = nn.batch_norm_backward(out, cache)
    assert {a.dtype for a in (out, dx, dg, db)} == {np.dtype(np.float32)}
