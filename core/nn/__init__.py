"""caviar's training engine: fully-connected softmax networks trained by compiled Numba kernels.

Public API:

- :func:`train` / :class:`TrainResult` / :func:`warmup` (:mod:`core.nn.train`), resumable from a
  :class:`Checkpoint` (:mod:`core.nn.checkpoint`);
- :class:`Model` and :func:`predict_proba` (:mod:`core.nn.model`, which documents the array names
  of :meth:`Model.to_arrays`);
- :func:`learning_rate` (:mod:`core.nn.schedule`) and :func:`optimizer_step` (:mod:`core.nn.optim`);
- the layer pairs ``*_forward`` / ``*_backward`` and :func:`softmax_cross_entropy`
  (:mod:`core.nn.layers`), each ``@njit(cache=True)`` with a shape docstring.

The compiled network itself is :mod:`core.nn.kernels`: each kernel takes one
:class:`core.nn.kernels.Workspace`, built by :meth:`Model.workspace`.
"""

from __future__ import annotations

from core.nn.checkpoint import Checkpoint
from core.nn.layers import (
    batch_norm_backward,
    batch_norm_forward,
    dense_backward,
    dense_forward,
    group_norm_backward,
    group_norm_forward,
    layer_norm_backward,
    layer_norm_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_cross_entropy,
    switchable_norm_backward,
    switchable_norm_forward,
    tanh_backward,
    tanh_forward,
    weight_norm_backward,
    weight_norm_forward,
)
from core.nn.model import NORM_EPS, Layout, Model, predict_proba
from core.nn.optim import OPTIMIZERS, optimizer_step
from core.nn.schedule import learning_rate
from core.nn.train import TrainResult, train, warmup

__all__ = [
    "Checkpoint",
    "NORM_EPS",
    "OPTIMIZERS",
    "Layout",
    "Model",
    "TrainResult",
    "batch_norm_backward",
    "batch_norm_forward",
    "dense_backward",
    "dense_forward",
    "group_norm_backward",
    "group_norm_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "learning_rate",
    "optimizer_step",
    "predict_proba",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_cross_entropy",
    "switchable_norm_backward",
    "switchable_norm_forward",
    "tanh_backward",
    "tanh_forward",
    "train",
    "warmup",
    "weight_norm_backward",
    "weight_norm_forward",
]
