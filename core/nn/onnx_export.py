"""Export a trained :class:`~core.nn.model.Model` as an ONNX graph for inference elsewhere.

:func:`to_onnx` returns the serialized ``ModelProto`` (bytes; this module writes no file). The
``onnx`` package is an optional extra, ``pip install 'caviar[onnx]'``, imported only when called.

The graph computes what :meth:`Model.predict_proba` computes in inference mode, op for op in the
model's dtype ``T`` (float32 or float64), so the two agree up to rounding (about 1e-6 in float32,
1e-15 in float64):

- input ``features`` [N, D] ``T``: RAW features. When the model knows its input scaling the graph
  starts with ``x = (features - input_mean) / input_scale`` (``Sub``, ``Div``; constants [D]), in
  ``T`` (caviar scales in float64, then casts).
- each hidden layer l computes ``z = x @ W + b`` (``Gemm``), then its norm, then the activation
  (``Relu``, ``Tanh`` or ``Sigmoid``), by norm kind:

  - ``none``: ``Gemm`` → activation.
  - ``weight``: the same, with the effective ``W = g·v/‖v‖`` of :meth:`Model.to_arrays` as a constant.
  - ``batch``: folded into the ``Gemm`` (no ``BatchNormalization`` node). With the inference
    statistics μ, σ² and s = γ/√(σ² + ε): ``W' = W·s`` (per column), ``b' = (b − μ)·s + β`` (b = 0:
    the layer has no bias), computed in float64 and then cast to ``T``.
  - ``layer``: per sample, ``μ = ReduceMean(z)``, ``σ² = ReduceMean((z − μ)²)`` over the H units,
    ``y = γ·(z − μ)/√(σ² + ε) + β`` (``Sub``, ``Mul``, ``Add``, ``Sqrt``, ``Div``).
  - ``group``: ``z`` is reshaped to [N, G, H/G] (group g holds the consecutive units
    g·H/G … (g+1)·H/G − 1, as in the engine), normalized as layer norm over the last axis,
    reshaped back to [N, H], then ``γ·x̂ + β``.
  - ``switchable``: the mean and variance mix the batch statistics — at inference the stored
    running statistics, constants — with the per-sample layer statistics, by the weights
    ``w = softmax(λ)`` (computed at export, float64): ``μ = w_μ[layer]·μ_layer + (w_μ[batch]·μ_run)``
    and ``σ² = w_σ[layer]·σ²_layer + (w_σ[batch]·σ²_run + ε)``, the parenthesised parts being [H]
    constants; only the layer statistics are computed in the graph. Then ``y = γ·(z − μ)/√σ² + β``.

- the output layer computes ``logits = x @ W + b`` (``Gemm``); the outputs are
  ``probabilities`` [N, C] ``T`` = ``Softmax(logits, axis=1)`` and ``label_index`` [N] int64 =
  ``ArgMax(probabilities, axis=1)`` (the first of equal maxima, as ``numpy.argmax``).

The norms use primitive ops rather than ONNX's fused ones on purpose: ``LayerNormalization``'s
ε is a float32 attribute and its statistics are float32 by default (``stash_type``), and
``GroupNormalization`` (opset 18) scales per group rather than per unit; primitive ops keep the
engine's arithmetic in ``T`` with ε as a ``T`` constant, and work on every opset from
:data:`MIN_OPSET`.

The model's ``metadata_props`` hold ``classes`` (JSON list: the original label of each output
unit, so ``classes[label_index]`` is the prediction), ``config`` (JSON: the caviar configuration),
``format`` (``caviar-mlp-1``), ``norm_eps``, ``n_features``, ``n_classes``, ``input_scaling``
(``"standardize"`` or ``"none"``) and ``source`` (JSON: where the model came from).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from core.errors import BadInput
from core.nn.layers import MIX_BATCH, MIX_LAYER
from core.nn.model import NORM_EPS, Model

__all__ = ["INPUT", "MIN_OPSET", "NORMS", "OUTPUT_LABEL", "OUTPUT_PROBA", "describe_onnx", "to_onnx"]

#: Name of the graph's input: raw features [N, D] in the model's dtype.
INPUT = "features"
#: Name of the output of class probabilities [N, C] in the model's dtype.
OUTPUT_PROBA = "probabilities"
#: Name of the output of the predicted class index [N] int64.
OUTPUT_LABEL = "label_index"
#: The oldest ONNX opset the graph is built for (``Softmax`` of one axis, ``ReduceMean`` by attribute).
MIN_OPSET = 13
#: The norm kinds the exporter supports (every kind the engine trains).
NORMS = ("none", "batch", "layer", "group", "switchable", "weight")

_ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
_INSTALL = "pip install 'caviar[onnx]'"
_I64 = np.dtype(np.int64)


def _import_onnx() -> Any:
    try:
        import onnx
        from onnx import checker, helper, numpy_helper  # noqa: F401 - submodules used through onnx.*
    except ImportError:
        raise BadInput("ONNX export", "onnx", f"it needs the optional package onnx: {_INSTALL}") from None
    return onnx


class _Graph:
    """Nodes and constants of the graph being built, with unique value names."""

    def __init__(self, onnx: Any, dtype: np.dtype, opset: int, reserved: tuple[str, ...]) -> None:
        self.onnx = onnx
        self.dtype = dtype
        self.opset = opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._used: set[str] = set(reserved)

    def _name(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def const(self, base: str, value: Any, dtype: np.dtype | None = None) -> str:
        """A constant (initializer) holding ``value`` cast to ``dtype`` (default: the model's dtype)."""
        name = self._name(base)
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype or self.dtype))
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str, *, exact: bool = False, **attrs: Any) -> str:
        """Add one node; return its single output's name (``out``, made unique unless ``exact``)."""
        name = out if exact else self._name(out)
        node = self.onnx.helper.make_node(op_type, inputs, [name], name=f"{name}/{op_type}", **attrs)
        self.nodes.append(node)
        return name

    def reduce_mean(self, x: str, axis: int, out: str) -> str:
        """Mean over one axis, kept as a size-1 axis (``axes`` is an input from opset 18 on)."""
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.const(f"{out}/axes", [axis], _I64)], out, keepdims=1)
        return self.op("ReduceMean", [x], out, axes=[axis], keepdims=1)

    def normalize(self, z: str, axis: int, eps: str, prefix: str) -> str:
        """(z − mean)/√(var + ε), biased statistics over ``axis`` of z, in two passes like the engine."""
        mu = self.reduce_mean(z, axis, f"{prefix}/mean")
        c = self.op("Sub", [z, mu], f"{prefix}/centered")
        var = self.reduce_mean(self.op("Mul", [c, c], f"{prefix}/squared"), axis, f"{prefix}/var")
        std = self.op("Sqrt", [self.op("Add", [var, eps], f"{prefix}/var_eps")], f"{prefix}/std")
        return self.op("Div", [c, std], f"{prefix}/xhat")


def _check(model: Model, opset: Any, max_opset: int) -> tuple[np.dtype, str, str]:
    """The model's dtype, norm and activation, or BadInput for what the exporter cannot express."""
    integer = isinstance(opset, (int, np.integer)) and not isinstance(opset, bool)
    if not integer or not MIN_OPSET <= opset <= max_opset:
        raise BadInput("opset", opset,
                       f"an integer from {MIN_OPSET} to {max_opset} (the newest the installed onnx knows)")
    dtype = np.dtype(model.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise BadInput("dtype", str(dtype), "ONNX export supports one of float32, float64")
    norm = str(model.layout.norm)
    if norm not in NORMS:
        raise BadInput("norm", norm, "ONNX export supports one of " + ", ".join(NORMS))
    act = str(model.config.get("activation"))
    if act not in _ONNX_ACTIVATIONS:
        raise BadInput("activation", act, "ONNX export supports one of " + ", ".join(_ONNX_ACTIVATIONS))
    if norm == "group":
        groups, hidden = int(model.layout.groups), int(model.layout.hidden)
        if groups < 1 or hidden % groups:
            raise BadInput("groups", groups, f"with norm=group, groups must divide hidden_units={hidden}")
    if not (np.all(np.isfinite(model.params)) and np.all(np.isfinite(model.running))):
        raise BadInput("model", "non-finite parameters", "a trained model (this one diverged: NaN or inf)")
    if _scaled(model):
        d = model.layout.n_features
        mean = np.asarray(model.input_mean, dtype=np.float64)
        scale = np.asarray(model.input_scale, dtype=np.float64)
        if mean.shape != (d,) or scale.shape != (d,):
            raise BadInput("input_mean/input_scale", f"{list(mean.shape)}/{list(scale.shape)}",
                           f"two arrays of shape [{d}]")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale != 0)):
            raise BadInput("input_scale", "zero or non-finite values", "finite, non-zero scales")
    return dtype, norm, act


def _scaled(model: Model) -> bool:
    """Whether the model standardizes its raw features."""
    return getattr(model, "input_mean", None) is not None and getattr(model, "input_scale", None) is not None


def _hidden_layer(g: _Graph, arrays: dict[str, np.ndarray], layer: int, x: str, norm: str, act: str,
                  groups: int, eps: str) -> str:
    """Hidden layer ``layer``: x [N, D_l] → act(norm(x @ W + b)) [N, H]; returns the output's name."""
    p = f"layer{layer}"
    W = arrays[f"W{layer}"].astype(np.float64)  # [D_l, H]
    hidden = W.shape[1]
    b = arrays[f"b{layer}"].astype(np.float64) if f"b{layer}" in arrays else np.zeros(hidden)  # [H]
    if norm == "batch":  # fold: γ·(xW + b − μ)/√(σ²+ε) + β = x(W·s) + ((b − μ)·s + β)
        s = arrays[f"gamma{layer}"].astype(np.float64) / np.sqrt(
            arrays[f"running_var{layer}"].astype(np.float64) + NORM_EPS)  # [H]
        W = W * s[None, :]
        b = (b - arrays[f"running_mean{layer}"].astype(np.float64)) * s + arrays[f"beta{layer}"]
    z = g.op("Gemm", [x, g.const(f"{p}/W", W), g.const(f"{p}/b", b)], f"{p}/z")  # [N, H]
    if norm in ("layer", "group", "switchable"):
        if norm == "layer":
            xhat = g.normalize(z, 1, eps, f"{p}/layer_norm")
        elif norm == "group":
            q = f"{p}/group_norm"
            grouped = g.op("Reshape", [z, g.const(f"{q}/shape", [0, groups, hidden // groups], _I64)],
                           f"{q}/grouped")  # [N, G, H/G]
            xg = g.normalize(grouped, 2, eps, q)
            xhat = g.op("Reshape", [xg, g.const(f"{q}/flat_shape", [0, hidden], _I64)], f"{q}/xhat_flat")
        else:
            xhat = _switchable(g, arrays, layer, z, f"{p}/switchable_norm")
        scaled = g.op("Mul", [xhat, g.const(f"{p}/gamma", arrays[f"gamma{layer}"])], f"{p}/scaled")
        z = g.op("Add", [scaled, g.const(f"{p}/beta", arrays[f"beta{layer}"])], f"{p}/normed")
    return g.op(_ONNX_ACTIVATIONS[act], [z], f"{p}/out")


def _softmax2(lam: np.ndarray) -> np.ndarray:
    """softmax of a (2,) pair of logits, float64."""
    e = np.exp(lam.astype(np.float64) - lam.max())
    return e / e.sum()


def _switchable(g: _Graph, arrays: dict[str, np.ndarray], layer: int, z: str, q: str) -> str:
    """Switchable norm's x̂ [N, H] of z [N, H] at inference: running and per-sample statistics mixed."""
    wm = _softmax2(arrays[f"lambda_mean{layer}"])
    wv = _softmax2(arrays[f"lambda_var{layer}"])
    mean_b = wm[MIX_BATCH] * arrays[f"running_mean{layer}"].astype(np.float64)  # [H]
    var_b = wv[MIX_BATCH] * arrays[f"running_var{layer}"].astype(np.float64) + NORM_EPS  # [H]
    mu_l = g.reduce_mean(z, 1, f"{q}/layer_mean")  # [N, 1]
    c_l = g.op("Sub", [z, mu_l], f"{q}/layer_centered")
    var_l = g.reduce_mean(g.op("Mul", [c_l, c_l], f"{q}/layer_squared"), 1, f"{q}/layer_var")  # [N, 1]
    mean_l = g.op("Mul", [mu_l, g.const(f"{q}/w_mean_layer", wm[MIX_LAYER])], f"{q}/mean_layer_part")
    mean = g.op("Add", [mean_l, g.const(f"{q}/mean_batch_part", mean_b)], f"{q}/mean")  # [N, H]
    var_lw = g.op("Mul", [var_l, g.const(f"{q}/w_var_layer", wv[MIX_LAYER])], f"{q}/var_layer_part")
    var = g.op("Add", [var_lw, g.const(f"{q}/var_batch_part_eps", var_b)], f"{q}/var_eps")  # [N, H]
    centered = g.op("Sub", [z, mean], f"{q}/centered")
    return g.op("Div", [centered, g.op("Sqrt", [var], f"{q}/std")], f"{q}/xhat")


def _metadata(model: Model) -> dict[str, str]:
    classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes]
    return {
        "format": "caviar-mlp-1",
        "classes": json.dumps(classes),
        "config": json.dumps(model.config, sort_keys=True),
        "norm_eps": repr(NORM_EPS),
        "n_features": str(model.layout.n_features),
        "n_classes": str(model.layout.n_classes),
        "input_scaling": "standardize" if _scaled(model) else "none",
        "source": json.dumps(getattr(model, "source", None) or {}, sort_keys=True, default=str),
    }


def to_onnx(model: Model, *, opset: int = 17) -> bytes:
    """The ONNX graph of ``model``'s inference (layout in the module docstring), serialized.

    Args:
        model: a trained network; its ``input_mean``/``input_scale``, when set, become graph ops.
        opset: the ONNX operator-set version of the default domain, from :data:`MIN_OPSET` to the
            installed onnx's newest.

    Returns:
        A serialized ``onnx.ModelProto`` (checked by ``onnx.checker``): input ``features`` [N, D]
        of raw features, outputs ``probabilities`` [N, C] (both in the model's dtype) and
        ``label_index`` [N] int64.

    Raises:
        BadInput: onnx is not installed (naming ``pip install 'caviar[onnx]'``); an opset out of
            range; a norm, activation or dtype the exporter cannot express; non-finite parameters
            (a diverged model) or a bad input scaling.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper

    dtype, norm, act = _check(model, opset, int(onnx.defs.onnx_opset_version()))
    lay = model.layout
    arrays = model.to_arrays()
    g = _Graph(onnx, dtype, int(opset), (INPUT, OUTPUT_PROBA, OUTPUT_LABEL))
    eps = g.const("norm_eps", NORM_EPS) if norm in ("layer", "group") else ""  # switchable folds ε in

    x = INPUT  # [N, D]
    if _scaled(model):
        centered = g.op("Sub", [x, g.const("input_mean", model.input_mean)], "input/centered")
        x = g.op("Div", [centered, g.const("input_scale", model.input_scale)], "input/standardized")
    for layer in range(lay.layers):
        x = _hidden_layer(g, arrays, layer, x, norm, act, int(lay.groups), eps)  # [N, H]
    out = lay.layers
    W, b = g.const(f"layer{out}/W", arrays[f"W{out}"]), g.const(f"layer{out}/b", arrays[f"b{out}"])
    logits = g.op("Gemm", [x, W, b], "logits")  # [N, C]
    g.op("Softmax", [logits], OUTPUT_PROBA, exact=True, axis=1)  # [N, C]
    g.op("ArgMax", [OUTPUT_PROBA], OUTPUT_LABEL, exact=True, axis=1, keepdims=0)  # [N] int64

    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph(
        g.nodes,
        "caviar_mlp",
        [helper.make_tensor_value_info(INPUT, elem, ["N", lay.n_features])],
        [helper.make_tensor_value_info(OUTPUT_PROBA, elem, ["N", lay.n_classes]),
         helper.make_tensor_value_info(OUTPUT_LABEL, TensorProto.INT64, ["N"])],
        initializer=g.inits,
        doc_string=(f"caviar MLP: {lay.layers} hidden layers of {lay.hidden} units, norm={norm}, "
                    f"activation={act}, {lay.n_classes} classes, {dtype.name}; input: raw features"),
    )
    opsets = [helper.make_opsetid("", int(opset))]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="caviar",
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def describe_onnx(data: bytes) -> dict[str, Any]:
    """A summary of a serialized ONNX model, for reports: ``opset``, ``ir_version``, ``inputs`` and
    ``outputs`` (each ``{name, type, shape}``, symbolic dimensions by name), ``ops`` (op type → count)
    and ``parameters`` (numbers held in the constants)."""
    onnx = _import_onnx()
    proto = onnx.load_from_string(data)

    def describe(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": v.name, "type": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "ir_version": int(proto.ir_version),
        "inputs": [describe(v) for v in proto.graph.input],
        "outputs": [describe(v) for v in proto.graph.output],
        "ops": ops,
        "parameters": int(sum(math.prod(t.dims) for t in proto.graph.initializer)),
    }
