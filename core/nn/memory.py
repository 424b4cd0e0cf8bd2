"""How much memory training one configuration takes, known before anything is allocated.

:func:`estimate_bytes` adds up what :func:`core.nn.train.train` holds while it runs, array by array,
in the configuration's dtype:

- the model: the flat parameters P (blocks aligned as :class:`core.nn.model.Layout` aligns them) and
  the running statistics;
- the training workspace of ``batch + 1`` rows: weight norm's effective weights, gradients and the
  optimizer's two moments (each P), per-layer activations and caches (``N_HID`` × L × rows × H),
  per-unit and per-sample statistics, the backward pass's two gradient buffers, the logits and the
  gathered mini-batch;
- the validation workspace of 512 rows (the same buffers without gradients or optimizer state);
- the epoch's shuffle permutation and the split dataset in the configuration's dtype.

Nothing here imports the kernels: the sizes mirror :meth:`core.nn.model.Model.workspace`, and
``tests/test_memory.py`` holds the estimate to what the engine really allocates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EVAL_ROWS", "estimate_bytes", "estimate_parts", "format_bytes", "parameter_count"]

#: Rows of the validation workspace (``core.nn.train``'s chunk of the validation pass).
EVAL_ROWS = 512

_ALIGN = 16  # elements per parameter block boundary, as in core.nn.model
_N_HID, _N_VEC, _N_ROWS = 4, 6, 4  # slots of the workspace's hid, vec and rows buffers (core.nn.kernels)
_ITEMSIZE = {"float32": 4, "float64": 8}
_DEFAULTS = {"layers": 2, "hidden_units": 128, "norm": "batch", "batch_size": 64, "dtype": "float32"}


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def parameter_count(config: Mapping[str, Any], features: int, classes: int) -> int:
    """P, the length of the flat parameter buffer (alignment padding included), as ``Layout.build`` has it."""
    layers, hidden, norm = int(config["layers"]), int(config["hidden_units"]), str(config["norm"])
    size, din = 0, features
    for _ in range(layers):
        size += _aligned(din * hidden)
        if norm not in ("batch", "switchable"):
            size += _aligned(hidden)  # bias
        if norm in ("batch", "layer", "group", "switchable"):
            size += 2 * _aligned(hidden)  # γ, β
        if norm == "weight":
            size += _aligned(hidden)  # g
        if norm == "switchable":
            size += 2 * _aligned(2)  # λ of the mean and of the variance
        din = hidden
    return size + _aligned(hidden * classes) + _aligned(classes)


def _workspace(rows: int, p: int, layers: int, hidden: int, features: int, classes: int, item: int,
               training: bool) -> int:
    """Bytes of the buffers one :class:`~core.nn.kernels.Workspace` of ``rows`` rows allocates."""
    floats = (
        p  # wbuf
        + (3 * p if training else 0)  # grads, m1, m2
        + _N_HID * layers * rows * hidden
        + _N_VEC * layers * hidden
        + _N_ROWS * layers * rows
        + 4 * layers  # lamw
        + 2 * rows * hidden  # dbuf
        + rows * classes  # logits
        + (rows * features if training else 0)  # xb
    )
    ints = 8 * ((rows if training else 0) + 1 + (layers + 1) * 7 + 8)  # yb, step, offs, ints
    return floats * item + ints + 8 * (2 * layers * hidden + 6)  # pop_sum and coef are float64


def estimate_parts(
    config: Mapping[str, Any], features: int, classes: int, rows_train: int, rows_val: int
) -> dict[str, int]:
    """The estimate of :func:`estimate_bytes`, by part: ``model``, ``training``, ``validation``, ``data``."""
    cfg = {**_DEFAULTS, **dict(config)}
    item = _ITEMSIZE.get(str(cfg["dtype"]), 8)
    layers, hidden = int(cfg["layers"]), int(cfg["hidden_units"])
    batch = min(int(cfg["batch_size"]), max(1, rows_train))
    p = parameter_count(cfg, features, classes)
    model = (p + 2 * layers * hidden) * item
    # one extra row: train() merges a last batch of one sample into the previous one
    training = _workspace(batch + 1, p, layers, hidden, features, classes, item, training=True)
    validation = _workspace(EVAL_ROWS, p, layers, hidden, features, classes, item, training=False)
    # the split features and labels, and the epoch's shuffle permutation (int64)
    data = (rows_train + rows_val) * (features * item + 8) + 8 * rows_train
    return {"model": model, "training": training, "validation": validation, "data": data}


def estimate_bytes(
    config: Mapping[str, Any], features: int, classes: int, rows_train: int, rows_val: int
) -> int:
    """Bytes that training ``config`` on a dataset of these sizes holds at its peak (within a factor of ~2).

    Args:
        config: a configuration (keys missing from it take the engine's defaults); read are ``layers``,
            ``hidden_units``, ``norm``, ``batch_size`` and ``dtype``.
        features: input features D. classes: classes C.
        rows_train: rows of the training split. rows_val: rows of the validation split.

    Returns:
        The estimate in bytes: the model, the training and validation workspaces and the split data.

    Example:
        >>> big = {"layers": 16, "hidden_units": 4096, "dtype": "float64"}
        >>> format_bytes(estimate_bytes(big, 784, 10, 4000, 1000))
        '12.6 GiB'
    """
    return sum(estimate_parts(config, features, classes, rows_train, rows_val).values())


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``'1.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
