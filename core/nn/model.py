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
  "classes", "norm_eps", "format": "caviar-mlp-1", "source": ...}`` (``source``: where the model
  came from, e.g. the study, trial and data split; may be empty).
- ``input_mean``, ``input_scale`` [D] float64 (when the model knows its input scaling): raw
  features become the network's inputs as ``(x - input_mean) / input_scale``.
- ``classes`` [C]: the original label of each output unit (numbers or strings).

That is the ``caviar-mlp-1`` file format: :meth:`Model.save` writes these arrays to an NPZ file and
:meth:`Model.load` reads them back (``allow_pickle=False``: arrays, numbers and strings only).
"""

from __future__ import annotations

import json
import os
import zipfile
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
from core.nn.memory import EVAL_ROWS  # training validates in chunks of this many rows; so does evaluate
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

__all__ = ["FORMAT", "NORM_EPS", "Layout", "Model", "predict_proba"]

#: ε added to every normalization's variance (PyTorch's default).
NORM_EPS = 1e-5
#: The model file format :meth:`Model.save` writes (the ``format`` field of its ``meta``).
FORMAT = "caviar-mlp-1"

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
        input_mean, input_scale: (D,) float64 scaling of raw features, ``(x - input_mean) /
            input_scale``; None when the model takes its inputs as they are.
        source: where the model came from (JSON-safe), saved with it; e.g. study, trial, data split.
    """

    config: dict[str, Any]
    layout: Layout
    params: np.ndarray
    running: np.ndarray
    classes: list[Any] = field(default_factory=list)
    input_mean: np.ndarray | None = None
    input_scale: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)

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
            "format": FORMAT,
            "config": self.config,
            "n_features": lay.n_features,
            "n_classes": lay.n_classes,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes],
            "norm_eps": NORM_EPS,
            "source": self.source,
        }
        out["meta"] = np.array(json.dumps(meta))
        if self.input_mean is not None and self.input_scale is not None:
            out["input_mean"] = np.asarray(self.input_mean, dtype=np.float64).copy()
            out["input_scale"] = np.asarray(self.input_scale, dtype=np.float64).copy()
        if self.classes:
            out["classes"] = np.asarray(meta["classes"])
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], where: str = "model") -> Model:
        """The model :meth:`to_arrays` described (optimizer state is not part of it).

        Raises:
            BadInput: ``meta`` is missing or not ``caviar-mlp-1``, or an array is missing or has the
                wrong shape (naming ``where`` and the array).
        """
        meta = _read_meta(arrays, where)
        config, n_features, n_classes = meta["config"], meta["n_features"], meta["n_classes"]
        try:
            layout = Layout.build(int(n_features), int(n_classes), config)
            dtype = np.dtype(config["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where} meta", "an incomplete config", f"a caviar-mlp-1 model ({exc})") from None
        params = np.zeros(layout.size, dtype=dtype)
        running = np.zeros((2, layout.layers, layout.hidden), dtype=dtype)
        running[STAT_VAR] = 1.0

        def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
            if name not in arrays:
                raise BadInput(where, f"no array {name!r}", f"a {FORMAT} model of a {layout.norm} network")
            value = np.asarray(arrays[name])
            if value.shape != shape or value.dtype.kind != "f":
                raise BadInput(f"{where} array {name!r}", f"{value.dtype}{list(value.shape)}",
                               f"floats of shape {list(shape)}")
            return value

        for layer in range(layout.layers + 1):
            weight_norm = layer < layout.layers and layout.norm == "weight"
            # a weight-normalized layer's parameters are its direction v and length g; W is derived
            layout.block(params, layer, "W")[...] = take(
                f"v{layer}" if weight_norm else f"W{layer}", layout.shape(layer, "W"))
            for slot in ("b", "gamma", "beta", "g", "lambda_mean", "lambda_var"):
                block = layout.block(params, layer, slot)
                if block is not None:
                    block[...] = take(f"{slot}{layer}", layout.shape(layer, slot))
            if layer < layout.layers and layout.norm in ("batch", "switchable"):
                running[STAT_MEAN, layer] = take(f"running_mean{layer}", (layout.hidden,))
                running[STAT_VAR, layer] = take(f"running_var{layer}", (layout.hidden,))
        mean = scale = None
        if "input_mean" in arrays or "input_scale" in arrays:
            mean = take("input_mean", (layout.n_features,)).astype(np.float64)
            scale = take("input_scale", (layout.n_features,)).astype(np.float64)
        classes = list(meta.get("classes") or [])
        if classes and len(classes) != layout.n_classes:
            raise BadInput(f"{where} meta classes", f"{len(classes)} labels", f"{layout.n_classes} labels")
        source = dict(meta.get("source") or {})
        return cls(dict(config), layout, params, running, classes, mean, scale, source)

    def save(self, path: str | os.PathLike[str]) -> list[str]:
        """Write the ``caviar-mlp-1`` NPZ file (exactly ``path``, no suffix added); return its array names."""
        arrays = self.to_arrays()
        with open(path, "wb") as handle:  # a handle, so that numpy does not append ".npz" to the name
            np.savez(handle, **arrays)
        return list(arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        """Read a file :meth:`save` (or ``caviar train --save``) wrote; never unpickles.

        Raises:
            BadInput: the file is missing, unreadable, not an NPZ file or not a ``caviar-mlp-1`` model.
        """
        name = str(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.array(z[k]) for k in z.files}
        except FileNotFoundError:
            raise BadInput("model", name, "expected an existing model file (caviar best --save writes one)") \
                from None
        except IsADirectoryError:
            raise BadInput("model", name, "expected a model file, not a directory") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BadInput("model", name, f"expected a {FORMAT} NPZ file ({type(exc).__name__})") from None
        return cls.from_arrays(arrays, name)

    def standardize(self, X_raw: np.ndarray) -> np.ndarray:
        """Raw features (n, D) as the network's inputs: scaled when the model knows its scaling, in its dtype.

        The arithmetic is :func:`core.data.load_dataset`'s (float64, then cast), so a training row
        maps to exactly the array the model was trained and validated on.
        """
        X = np.asarray(X_raw)
        if X.ndim != 2 or X.shape[1] != self.layout.n_features:
            raise BadInput("X", list(X.shape), f"a 2-d array of {self.layout.n_features} columns (features)")
        if self.input_mean is None or self.input_scale is None:
            return np.ascontiguousarray(X, dtype=self.dtype)
        scaled = (X.astype(np.float64) - self.input_mean) / self.input_scale
        return np.ascontiguousarray(scaled, dtype=self.dtype)

    def predict_proba(self, X_raw: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) of raw features X_raw (n, D), in inference mode.

        The features are scaled first (:meth:`standardize`); :func:`predict_proba` takes the network's
        inputs as they are.
        """
        return predict_proba(self, self.standardize(X_raw))

    def evaluate(self, X_raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of raw features X_raw (n, D) against class codes y (n,).

        Computed as training validates (the same kernel, the same 512-row chunks), so on a model's own
        validation rows it gives the validation loss training reported, bit for bit.
        """
        X = self.standardize(X_raw)
        codes = np.ascontiguousarray(y, dtype=np.int64)
        if codes.shape != (X.shape[0],) or X.shape[0] == 0:
            raise BadInput("y", list(codes.shape), f"one class code per row of X ({X.shape[0]} rows, ≥ 1)")
        if codes.min() < 0 or codes.max() >= self.layout.n_classes:
            shown = (int(codes.min()), int(codes.max()))
            raise BadInput("y", shown, f"codes in 0..{self.layout.n_classes - 1}")
        loss, accuracy = kernels.evaluate(self.workspace(EVAL_ROWS), X, codes)
        return float(loss), float(accuracy)

    def predict(self, X_raw: np.ndarray) -> list[Any]:
        """The predicted original label of each row of raw features (class codes if ``classes`` is empty)."""
        codes = self.predict_proba(X_raw).argmax(axis=1)
        if not self.classes:
            return [int(c) for c in codes]
        return [self.classes[int(c)] for c in codes]


def _read_meta(arrays: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    if "meta" not in arrays:
        raise BadInput(where, "no 'meta' array", f"a {FORMAT} model file (caviar best --save writes one)")
    try:
        meta = json.loads(str(np.asarray(arrays["meta"])))
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("config"), dict):
        shown = meta.get("format") if isinstance(meta, dict) else "unreadable"
        raise BadInput(f"{where} format", shown, f"{FORMAT}")
    if meta.get("norm_eps", NORM_EPS) != NORM_EPS:
        raise BadInput(f"{where} norm_eps", meta.get("norm_eps"), f"{NORM_EPS} (the engine's)")
    return meta


def predict_proba(model: Model, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, C) of X (n, features) under ``model`` in inference mode.

    X are the network's inputs as they are (already scaled); :meth:`Model.predict_proba` takes raw
    features. Batch norm (and switchable norm's batch part) uses the model's inference statistics.
    """
    X = np.ascontiguousarray(X, dtype=model.dtype)
    if X.ndim != 2 or X.shape[1] != model.layout.n_features:
        raise BadInput("X", X.shape, f"a 2-d array with {model.layout.n_features} columns")
    out = np.empty((X.shape[0], model.layout.n_classes), dtype=model.dtype)
    kernels.predict(model.workspace(min(EVAL_ROWS, max(1, X.shape[0]))), X, out)
    return out
