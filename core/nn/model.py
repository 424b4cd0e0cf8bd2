"""A trained (or freshly initialised) network: its layout, flat parameters and inference statistics.

A network has ``L = layers`` hidden layers of ``H = hidden_units`` units and a softmax output of
``C`` classes. Layer l (0 ≤ l < L) computes ``act(norm(a @ W + b))``; the output layer L computes
``a @ W + b``. All trainable numbers live in one flat buffer (blocks aligned to 16 elements);
:attr:`Layout.offs` says where each block starts.

:meth:`Model.to_arrays` names the arrays as follows (l is the layer index, shapes in brackets;
``D_0`` = features, ``D_l`` = H for l ≥ 1):

- ``W{l}`` [D_l, H] (``W{L}`` [H, C]): the weight matrix the layer multiplies by. For weight
  norm this is the effective ``g·v/‖v‖``.
- ``b{l}`` [H] (``b{L}`` [C]): bias; absent for hidden layers with ``batch`` or ``switchable``
  norm (the norm's mean subtraction cancels it; β takes its role).
- ``gamma{l}``, ``beta{l}`` [H]: scale and shift of ``batch``, ``layer``, ``group`` and
  ``switchable`` norm.
- ``running_mean{l}``, ``running_var{l}`` [H]: the statistics used at inference by ``batch`` norm
  and by the batch part of ``switchable`` norm — the running averages, or the population
  estimate when ``bn_inference = "population"``.
- ``v{l}`` [D_l, H], ``g{l}`` [H]: weight norm's direction and length parameters.
- ``lambda_mean{l}``, ``lambda_var{l}`` [2]: switchable norm's logits over (batch, layer)
  statistics for the mean and for the variance; the weights are their softmax.
- ``meta``: a 0-d string array holding JSON ``{"config": ..., "n_features", "n_classes",
  "classes", "norm_eps", "format": "caviar-mlp-1"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import BadInput
from core.nn import kernels
from core.nn.init import init_weight
from core.nn.kernels import NORMS, SLOT
from core.nn.layers import ACTIVATIONS
from core.nn.optim import COEF, OPTIMIZERS

__all__ = ["NORM_EPS", "Layout", "Model", "predict_proba"]

#: ε added to every normalization's variance (PyTorch's default).
NORM_EPS = 1e-5

_ALIGN = 16  # elements: 64 bytes of float32, so every block starts on a cache line


@dataclass(frozen=True)
class Layout:
    """Where each parameter block of a network sits in the flat buffer."""

    n_features: int
    n_classes: int
    layers: int
    hidden: int
    norm: str
    groups: int
    offs: np.ndarray  # (layers + 1, len(SLOT)) int64, −1 for absent blocks
    size: int

    @classmethod
    def build(cls, n_features: int, n_classes: int, config: Mapping[str, Any]) -> Layout:
        """Lay out the blocks for ``config`` (keys layers, hidden_units, norm, groups)."""
        layers, hidden, norm = int(config["layers"]), int(config["hidden_units"]), str(config["norm"])
        offs = np.full((layers + 1, len(SLOT)), -1, dtype=np.int64)
        pos = 0

        def take(n: int) -> int:
            nonlocal pos
            start = pos
            pos += -(-n // _ALIGN) * _ALIGN
            return start

        din = n_features
        for layer in range(layers):
            offs[layer, SLOT["W"]] = take(din * hidden)
            if norm not in ("batch", "switchable"):
                offs[layer, SLOT["b"]] = take(hidden)
            if norm in ("batch", "layer", "group", "switchable"):
                offs[layer, SLOT["gamma"]] = take(hidden)
                offs[layer, SLOT["beta"]] = take(hidden)
            if norm == "weight":
                offs[layer, SLOT["g"]] = take(hidden)
            if norm == "switchable":
                offs[layer, SLOT["lambda_mean"]] = take(2)
                offs[layer, SLOT["lambda_var"]] = take(2)
            din = hidden
        offs[layers, SLOT["W"]] = take(hidden * n_classes)
        offs[layers, SLOT["b"]] = take(n_classes)
        return cls(n_features, n_classes, layers, hidden, norm, int(config["groups"]), offs, pos)

    def shape(self, layer: int, slot: str) -> tuple[int, ...]:
        """The shape of a block: W is (in, out), the rest are vectors."""
        if slot == "W":
            din = self.n_features if layer == 0 else self.hidden
            return (din, self.n_classes if layer == self.layers else self.hidden)
        if slot in ("lambda_mean", "lambda_var"):
            return (2,)
        return (self.n_classes if layer == self.layers else self.hidden,)

    def block(self, buf: np.ndarray, layer: int, slot: str) -> np.ndarray | None:
        """A view of one block of a flat buffer (None when the layer has no such block)."""
        off = int(self.offs[layer, SLOT[slot]])
        if off < 0:
            return None
        shape = self.shape(layer, slot)
        return buf[off:off + int(np.prod(shape))].reshape(shape)


def code_ints(layout: Layout, config: Mapping[str, Any]) -> np.ndarray:
    """The kernels' integer description of the network (see :data:`core.nn.kernels.INT`)."""
    return np.array(
        [layout.layers, layout.hidden, layout.n_classes, layout.n_features, NORMS[layout.norm],
         ACTIVATIONS[config["activation"]], OPTIMIZERS[config["optimizer"]], layout.groups],
        dtype=np.int64,
    )


def code_coef(config: Mapping[str, Any], lr: float | None = None) -> np.ndarray:
    """The kernels' float64 coefficients (see :data:`core.nn.optim.COEF`)."""
    coef = np.zeros(len(COEF))
    coef[COEF["norm_eps"]] = NORM_EPS
    coef[COEF["bn_momentum"]] = config["bn_momentum"]
    coef[COEF["learning_rate"]] = config["learning_rate"] if lr is None else lr
    # the momentum optimizer's β shares beta1's slot
    coef[COEF["beta1"]] = config["momentum"] if config["optimizer"] == "momentum" else config["beta1"]
    coef[COEF["beta2"]] = config["beta2"]
    coef[COEF["epsilon"]] = config["epsilon"]
    return coef


@dataclass
class Model:
    """A network's configuration, flat parameters and inference statistics.

    Attributes:
        config: the full configuration (``hparams.resolve``) it was built from.
        layout: the parameter layout.
        params: (P,) flat parameters in the config's dtype.
        running: (2, L, H) inference mean and variance of batch/switchable norm.
        classes: the original label values, by class index.
    """

    config: dict[str, Any]
    layout: Layout
    params: np.ndarray
    running: np.ndarray
    classes: list[Any] = field(default_factory=list)

    @classmethod
    def init(cls, config: Mapping[str, Any], n_features: int, n_classes: int,
             classes: list[Any] | None = None) -> Model:
        """A fresh network: He/Xavier weights from ``config["seed"]``, zero biases, γ = 1, β = 0,
        λ = 0 (equal switchable weights), weight-norm g = the initial column norms (so W is
        unchanged), running mean 0 and variance 1."""
        layout = Layout.build(n_features, n_classes, config)
        dtype = np.dtype(config["dtype"])
        params = np.zeros(layout.size, dtype=dtype)
        rng = np.random.default_rng(int(config["seed"]))
        for layer in range(layout.layers + 1):
            act = config["activation"] if layer < layout.layers else "linear"
            w = init_weight(rng, *layout.shape(layer, "W"), act)
            layout.block(params, layer, "W")[...] = w
            gamma = layout.block(params, layer, "gamma")
            if gamma is not None:
                gamma[...] = 1.0
            g = layout.block(params, layer, "g")
            if g is not None:
                g[...] = np.sqrt((layout.block(params, layer, "W").astype(np.float64) ** 2).sum(axis=0))
        running = np.zeros((2, layout.layers, layout.hidden), dtype=dtype)
        running[1] = 1.0
        return cls(dict(config), layout, params, running, list(classes) if classes is not None else [])

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    def kernel_args(self, bmax: int) -> tuple[Any, ...]:
        """``(params, wbuf, offs, ints, coef, running, hid, vec, rows, lamw, logits)`` for inference."""
        hid, vec, rows, lamw, _, logits = kernels.workspace(
            self.layout.layers, self.layout.hidden, self.layout.n_classes, bmax, self.dtype)
        ints = code_ints(self.layout, self.config)
        return (self.params, np.zeros_like(self.params), self.layout.offs, ints, code_coef(self.config),
                self.running, hid, vec, rows, lamw, logits)

    def effective_weights(self) -> np.ndarray:
        """The flat buffer with each weight-normalized W replaced by g·v/‖v‖ (a copy)."""
        args = self.kernel_args(1)
        params, wbuf, offs, ints, _, _, _, vec = args[:8]
        kernels._prepare_weights(params, wbuf, offs, ints, vec)
        if self.layout.norm != "weight":
            return params.copy()
        out = params.copy()
        for layer in range(self.layout.layers):
            self.layout.block(out, layer, "W")[...] = self.layout.block(wbuf, layer, "W")
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named copies of every parameter and statistic; names in the module docstring."""
        lay = self.layout
        eff = self.effective_weights()
        out: dict[str, np.ndarray] = {}
        for layer in range(lay.layers + 1):
            out[f"W{layer}"] = lay.block(eff, layer, "W").copy()
            for slot in ("b", "gamma", "beta", "g", "lambda_mean", "lambda_var"):
                block = lay.block(self.params, layer, slot)
                if block is not None:
                    out[f"{slot}{layer}"] = block.copy()
            if layer < lay.layers and lay.norm == "weight":
                out[f"v{layer}"] = lay.block(self.params, layer, "W").copy()
            if layer < lay.layers and lay.norm in ("batch", "switchable"):
                out[f"running_mean{layer}"] = self.running[0, layer].copy()
                out[f"running_var{layer}"] = self.running[1, layer].copy()
        meta = {
            "format": "caviar-mlp-1",
            "config": self.config,
            "n_features": lay.n_features,
            "n_classes": lay.n_classes,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes],
            "norm_eps": NORM_EPS,
        }
        out["meta"] = np.array(json.dumps(meta))
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) of inputs X (n, features), in inference mode."""
        return predict_proba(self, X)


def predict_proba(model: Model, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, C) of X (n, features) under ``model`` in inference mode.

    Batch norm (and switchable norm's batch part) uses the model's inference statistics.
    """
    X = np.ascontiguousarray(X, dtype=model.dtype)
    if X.ndim != 2 or X.shape[1] != model.layout.n_features:
        raise BadInput("X", X.shape, f"a 2-d array with {model.layout.n_features} columns")
    out = np.empty((X.shape[0], model.layout.n_classes), dtype=model.dtype)
    kernels.predict(X, *model.kernel_args(min(512, max(1, X.shape[0]))), out)
    return out
