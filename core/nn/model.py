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
from core.nn.kernels import (
    INT_ACTIVATION,
    INT_CLASSES,
    INT_FEATURES,
    INT_GROUPS,
    INT_HIDDEN,
    INT_LAYERS,
    INT_NORM,
    INT_OPTIMIZER,
    N_HID,
    N_INTS,
    N_ROWS,
    N_SLOTS,
    N_VEC,
    NORMS,
    SLOT,
    SLOT_B,
    SLOT_BETA,
    SLOT_G,
    SLOT_GAMMA,
    SLOT_LAMBDA_MEAN,
    SLOT_LAMBDA_VAR,
    SLOT_W,
    STAT_MEAN,
    STAT_VAR,
    Workspace,
)
from core.nn.layers import ACTIVATIONS
from core.nn.optim import (
    COEF_BETA1,
    COEF_BETA2,
    COEF_BN_MOMENTUM,
    COEF_EPSILON,
    COEF_LEARNING_RATE,
    COEF_NORM_EPS,
    N_COEF,
    OPTIMIZERS,
)

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
    offs: np.ndarray  # (layers + 1, N_SLOTS) int64 by kernels.SLOT_*, −1 for absent blocks
    size: int

    @classmethod
    def build(cls, n_features: int, n_classes: int, config: Mapping[str, Any]) -> Layout:
        """Lay out the blocks for ``config`` (keys layers, hidden_units, norm, groups)."""
        layers, hidden, norm = int(config["layers"]), int(config["hidden_units"]), str(config["norm"])
        offs = np.full((layers + 1, N_SLOTS), -1, dtype=np.int64)
        pos = 0

        def take(n: int) -> int:
            nonlocal pos
            start = pos
            pos += -(-n // _ALIGN) * _ALIGN
            return start

        din = n_features
        for layer in range(layers):
            offs[layer, SLOT_W] = take(din * hidden)
            if norm not in ("batch", "switchable"):
                offs[layer, SLOT_B] = take(hidden)
            if norm in ("batch", "layer", "group", "switchable"):
                offs[layer, SLOT_GAMMA] = take(hidden)
                offs[layer, SLOT_BETA] = take(hidden)
            if norm == "weight":
                offs[layer, SLOT_G] = take(hidden)
            if norm == "switchable":
                offs[layer, SLOT_LAMBDA_MEAN] = take(2)
                offs[layer, SLOT_LAMBDA_VAR] = take(2)
            din = hidden
        offs[layers, SLOT_W] = take(hidden * n_classes)
        offs[layers, SLOT_B] = take(n_classes)
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
    """The kernels' (N_INTS,) int64 description of the network (slots ``core.nn.kernels.INT_*``)."""
    ints = np.zeros(N_INTS, dtype=np.int64)
    ints[INT_LAYERS] = layout.layers
    ints[INT_HIDDEN] = layout.hidden
    ints[INT_CLASSES] = layout.n_classes
    ints[INT_FEATURES] = layout.n_features
    ints[INT_NORM] = NORMS[layout.norm]
    ints[INT_ACTIVATION] = ACTIVATIONS[config["activation"]]
    ints[INT_OPTIMIZER] = OPTIMIZERS[config["optimizer"]]
    ints[INT_GROUPS] = layout.groups
    return ints


def code_coef(config: Mapping[str, Any], lr: float | None = None) -> np.ndarray:
    """The kernels' (N_COEF,) float64 coefficients (slots ``core.nn.optim.COEF_*``)."""
    coef = np.zeros(N_COEF)
    coef[COEF_NORM_EPS] = NORM_EPS
    coef[COEF_BN_MOMENTUM] = config["bn_momentum"]
    coef[COEF_LEARNING_RATE] = config["learning_rate"] if lr is None else lr
    # the momentum optimizer's β shares beta1's slot
    coef[COEF_BETA1] = config["momentum"] if config["optimizer"] == "momentum" else config["beta1"]
    coef[COEF_BETA2] = config["beta2"]
    coef[COEF_EPSILON] = config["epsilon"]
    return coef


@dataclass
class Model:
    """A network's configuration, flat parameters and inference statistics.

    Attributes:
        config: the full configuration (``hparams.resolve``) it was built from.
        layout: the parameter layout.
        params: (P,) flat parameters in the config's dtype.
        running: (2, L, H) inference mean and variance of batch/switchable norm (first axis
            ``kernels.STAT_MEAN``, ``kernels.STAT_VAR``).
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
        running[STAT_VAR] = 1.0
        return cls(dict(config), layout, params, running, list(classes) if classes is not None else [])

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    def workspace(self, rows: int, *, training: bool = False) -> Workspace:
        """The kernels' :class:`~core.nn.kernels.Workspace` for passes of up to ``rows`` rows.

        It holds this model's own ``params`` and ``running`` (the kernels update them in place),
        its encoded description and freshly zeroed buffers. ``training=True`` adds the gradients,
        optimizer state and gather buffers of :func:`~core.nn.kernels.train_epoch` (give it
        ``batch + 1`` rows) and :func:`~core.nn.kernels.loss_and_grad`; an inference workspace has
        them zero-length but of the same types, so both kinds share one compiled kernel.
        """
        lay, dtype = self.layout, self.dtype
        layers, hidden = lay.layers, lay.hidden
        p = lay.size if training else 0
        r = rows if training else 0
        return Workspace(
            params=self.params,
            running=self.running,
            offs=lay.offs,
            ints=code_ints(lay, self.config),
            coef=code_coef(self.config),
            wbuf=np.zeros(lay.size, dtype=dtype),
            grads=np.zeros(p, dtype=dtype),
            m1=np.zeros(p, dtype=dtype),
            m2=np.zeros(p, dtype=dtype),
            step=np.zeros(1, dtype=np.int64),
            hid=np.zeros((N_HID, layers, rows, hidden), dtype=dtype),
            vec=np.zeros((N_VEC, layers, hidden), dtype=dtype),
            rows=np.zeros((N_ROWS, layers, rows), dtype=dtype),
            lamw=np.zeros((2, layers, 2), dtype=dtype),
            dbuf=np.zeros((2, rows, hidden), dtype=dtype),
            logits=np.zeros((rows, lay.n_classes), dtype=dtype),
            xb=np.zeros((r, lay.n_features), dtype=dtype),
            yb=np.zeros(r, dtype=np.int64),
            pop_sum=np.zeros((2, layers, hidden)),
        )

    def effective_weights(self) -> np.ndarray:
        """The flat buffer with each weight-normalized W replaced by g·v/‖v‖ (a copy)."""
        if self.layout.norm != "weight":
            return self.params.copy()
        ws = self.workspace(1)
        kernels.prepare_weights(ws)
        out = self.params.copy()
        for layer in range(self.layout.layers):
            self.layout.block(out, layer, "W")[...] = self.layout.block(ws.wbuf, layer, "W")
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
                out[f"running_mean{layer}"] = self.running[STAT_MEAN, layer].copy()
                out[f"running_var{layer}"] = self.running[STAT_VAR, layer].copy()
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
    kernels.predict(model.workspace(min(512, max(1, X.shape[0]))), X, out)
    return out
