"""The compiled network: whole-network gradients per norm, optimizers, schedules, inference statistics,
and one full training step against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_nn_layers import numeric_grad, rel_error

from core import hparams
from core.nn import Model, kernels, learning_rate, optimizer_step
from core.nn.model import NORM_EPS, code_coef
from core.nn.optim import OPTIMIZERS


class Net:
    """A float64 network and its kernel buffers, for calling the kernels directly."""

    def __init__(self, features: int, classes: int, batch: int, **overrides):
        self.config = hparams.resolve({"dtype": "float64", "hidden_units": 6, "groups": 3, **overrides})
        self.model = Model.init(self.config, features, classes)
        self.ws = self.model.workspace(batch + 1, training=True)
        self.grads, self.coef = self.ws.grads, self.ws.coef

    def loss_and_grad(self, X: np.ndarray, y: np.ndarray) -> float:
        return kernels.loss_and_grad(self.ws, X, y)

    def population(self, X: np.ndarray, batch: int) -> None:
        kernels.population_statistics(self.ws, X, batch=batch)


def batch(rng: np.random.Generator, n: int = 7, features: int = 5, classes: int = 3):
    X = np.ascontiguousarray(rng.standard_normal((n, features)))
    return X, rng.integers(0, classes, n).astype(np.int64)


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group", "switchable", "weight"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_whole_network_gradient(norm, activation):
    rng = np.random.default_rng(3)
    X, y = batch(rng)
    net = Net(5, 3, len(X), norm=norm, activation=activation, layers=2)
    params = net.model.params
    # move away from the initial state (γ = 1, β = 0, λ = 0, g = ‖v‖) so every term matters
    params += 0.1 * rng.standard_normal(params.shape)
    net.loss_and_grad(X, y)
    analytic = net.grads.copy()
    numeric = numeric_grad(lambda: net.loss_and_grad(X, y), params)
    assert rel_error(analytic, numeric) < 1e-6


def test_bias_is_dropped_before_batch_and_switchable_norm():
    for norm, has_bias in (("batch", False), ("switchable", False), ("layer", True), ("none", True)):
        m = Model.init(hparams.resolve({"norm": norm}), 4, 3)
        assert ("b0" in m.to_arrays()) is has_bias
        assert "b2" in m.to_arrays()  # the output layer always has its bias


# --------------------------------------------------------------------------------------------------
# optimizers and schedules


def _config(**kw):
    return hparams.resolve({"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.9, "momentum": 0.7,
                            "epsilon": 1e-3, **kw})


@pytest.mark.parametrize("opt", ["sgd", "momentum", "rmsprop", "adam"])
def test_optimizer_matches_hand_computed_steps(opt):
    g1, g2 = np.array([0.5, -2.0, 0.0, 3.0]), np.array([-1.0, 1.0, 0.25, 3.0])
    p = np.array([1.0, 2.0, -1.0, 0.5])
    m1, m2 = np.zeros(4), np.zeros(4)
    coef = code_coef(_config(optimizer=opt))
    got = p.copy()
    optimizer_step(got, g1, m1, m2, 1, OPTIMIZERS[opt], coef)
    optimizer_step(got, g2, m1, m2, 2, OPTIMIZERS[opt], coef)
    a, b, b1, b2, eps = 0.1, 0.7, 0.8, 0.9, 1e-3
    want = p.copy()
    if opt == "sgd":
        want = p - a * g1 - a * g2
    elif opt == "momentum":  # the course's average: v = βv + (1−β)g
        v1 = (1 - b) * g1
        v2 = b * v1 + (1 - b) * g2
        want = p - a * v1 - a * v2
    elif opt == "rmsprop":
        s1 = (1 - b2) * g1**2
        want = p - a * g1 / (np.sqrt(s1) + eps)
        s2 = b2 * s1 + (1 - b2) * g2**2
        want = want - a * g2 / (np.sqrt(s2) + eps)
    else:
        m, v = np.zeros(4), np.zeros(4)
        for t, g in ((1, g1), (2, g2)):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            want = want - a * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_adam_matches_pytorch():
    rng = np.random.default_rng(0)
    p = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(3)]
    coef = code_coef(_config(optimizer="adam"))
    ours, m1, m2 = p.copy(), np.zeros(6), np.zeros(6)
    tp = torch.tensor(p, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=0.1, betas=(0.8, 0.9), eps=1e-3)
    for t, g in enumerate(grads, start=1):
        optimizer_step(ours, g, m1, m2, t, OPTIMIZERS["adam"], coef)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    np.testing.assert_allclose(ours, tp.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("none", [0.5, 0.5, 0.5, 0.5]),
        ("inverse_time", [0.5, 0.5 / 1.5, 0.5 / 2.0, 0.5 / 2.5]),
        ("exponential", [0.5 * math.exp(-0.5 * e) for e in range(4)]),
        ("step", [0.5, 0.5, 0.5 * math.exp(-1.0), 0.5 * math.exp(-1.0)]),
    ],
)
def test_learning_rate_schedules(kind, expected):
    config = hparams.resolve(
        {"learning_rate": 0.5, "lr_decay": 0.5, "lr_decay_kind": kind, "lr_step_epochs": 2})
    assert [learning_rate(config, e) for e in range(4)] == pytest.approx(expected, rel=1e-15)


# --------------------------------------------------------------------------------------------------
# inference statistics


@pytest.mark.parametrize("norm", ["batch", "switchable"])
def test_running_statistics_follow_their_definition(norm):
    """After k training-mode passes: r = (1−μ)·r + μ·(batch mean | unbiased batch variance), from 0 / 1."""
    rng = np.random.default_rng(1)
    net = Net(5, 3, 9, norm=norm, bn_momentum=0.3)
    W0 = net.model.layout.block(net.model.params, 0, "W").copy()
    r_mean, r_var = np.zeros(6), np.ones(6)
    for n in (9, 4, 7):
        X, y = batch(rng, n)
        net.loss_and_grad(X, y)  # no update: the weights stay W0
        z = X @ W0
        r_mean = 0.7 * r_mean + 0.3 * z.mean(axis=0)
        r_var = 0.7 * r_var + 0.3 * z.var(axis=0, ddof=1)
    np.testing.assert_allclose(net.model.running[0, 0], r_mean, rtol=1e-12)
    np.testing.assert_allclose(net.model.running[1, 0], r_var, rtol=1e-12)


def test_population_estimate_follows_its_definition():
    """μ = E[μ_B], σ² = m/(m−1)·E[σ²_B] over the full batches in order, each layer fed by batch-norm
    in training mode (the remainder rows are left out)."""
    rng = np.random.default_rng(2)
    m = 4
    net = Net(5, 3, m, norm="batch", layers=2)
    net.model.params += 0.1 * rng.standard_normal(net.model.params.shape)
    X, _ = batch(rng, 4 * m + 3)
    net.population(X, m)
    lay, params = net.model.layout, net.model.params
    means, variances = [[], []], [[], []]
    for b in range(4):
        a = X[b * m:(b + 1) * m]
        for layer in range(2):
            z = a @ lay.block(params, layer, "W")
            mu, var = z.mean(axis=0), z.var(axis=0)
            means[layer].append(mu)
            variances[layer].append(var)
            gamma, beta = lay.block(params, layer, "gamma"), lay.block(params, layer, "beta")
            h = gamma * (z - mu) / np.sqrt(var + NORM_EPS) + beta
            a = np.maximum(h, 0)
    for layer in range(2):
        np.testing.assert_allclose(net.model.running[0, layer], np.mean(means[layer], axis=0), rtol=1e-10)
        want_var = m / (m - 1) * np.mean(variances[layer], axis=0)
        np.testing.assert_allclose(net.model.running[1, layer], want_var, rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# a full training step against PyTorch


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_training_step_matches_pytorch(norm):
    """Forward, backward, Adam update and running statistics of one step on a 5-6-6-3 network."""
    rng = np.random.default_rng(4)
    X, y = batch(rng, 8)
    net = Net(5, 3, 8, norm=norm, layers=2, learning_rate=0.01, bn_momentum=0.1)
    lay, params = net.model.layout, net.model.params
    params += 0.1 * rng.standard_normal(params.shape)
    mods: list[torch.nn.Module] = []
    for layer in range(2):
        din = 5 if layer == 0 else 6
        lin = torch.nn.Linear(din, 6, bias=norm != "batch", dtype=torch.float64)
        lin.weight.data = torch.from_numpy(lay.block(params, layer, "W").T.copy())
        if norm != "batch":
            lin.bias.data = torch.from_numpy(lay.block(params, layer, "b").copy())
        mods.append(lin)
        if norm in ("batch", "layer"):
            nm = (torch.nn.BatchNorm1d(6, dtype=torch.float64) if norm == "batch"
                  else torch.nn.LayerNorm(6, dtype=torch.float64))
            nm.weight.data = torch.from_numpy(lay.block(params, layer, "gamma").copy())
            nm.bias.data = torch.from_numpy(lay.block(params, layer, "beta").copy())
            mods.append(nm)
        mods.append(torch.nn.ReLU())
    out = torch.nn.Linear(6, 3, dtype=torch.float64)
    out.weight.data = torch.from_numpy(lay.block(params, 2, "W").T.copy())
    out.bias.data = torch.from_numpy(lay.block(params, 2, "b").copy())
    mods.append(out)
    tnet = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(tnet.parameters(), lr=0.01)

    loss = net.loss_and_grad(X, y)
    optimizer_step(params, net.grads, np.zeros_like(params), np.zeros_like(params), 1, OPTIMIZERS["adam"],
                   net.coef)
    tloss = torch.nn.functional.cross_entropy(tnet(torch.from_numpy(X)), torch.from_numpy(y))
    opt.zero_grad()
    tloss.backward()
    opt.step()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    lin_idx = [i for i, mod in enumerate(mods) if isinstance(mod, torch.nn.Linear)]
    for layer, i in enumerate(lin_idx):
        want_w = mods[i].weight.detach().numpy().T
        np.testing.assert_allclose(lay.block(params, layer, "W"), want_w, rtol=1e-9, atol=1e-12)
        if norm in ("batch", "layer") and layer < 2:
            np.testing.assert_allclose(lay.block(params, layer, "gamma"), mods[i + 1].weight.detach().numpy(),
                                       rtol=1e-9, atol=1e-12)
        if norm == "batch" and layer < 2:
            bn = mods[i + 1]
            np.testing.assert_allclose(net.model.running[0, layer], bn.running_mean.numpy(), rtol=1e-9,
                                       atol=1e-12)
            np.testing.assert_allclose(net.model.running[1, layer], bn.running_var.numpy(), rtol=1e-9)
