"""Training one network: :func:`train` and its :class:`TrainResult`, and :func:`warmup`.

Each epoch is one call of the compiled :func:`core.nn.kernels.train_epoch` (shuffle, gather,
forward, backward, update for every mini-batch) followed by one compiled validation pass; Python
runs once per epoch to record history, detect divergence and call ``on_epoch``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core import hparams
from core.errors import BadInput
from core.nn import kernels
from core.nn.checkpoint import Checkpoint, capture, restore
from core.nn.memory import EVAL_ROWS
from core.nn.model import Model
from core.nn.optim import COEF_LEARNING_RATE
from core.nn.schedule import learning_rate

__all__ = ["TrainResult", "train", "warmup"]

_warm: set[str] = set()


class DatasetLike(Protocol):
    """What :func:`train` reads from a :class:`core.data.Dataset`."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes:
        status: ``"complete"``, ``"diverged"`` (a NaN or infinite loss) or ``"cancelled"``
            (``on_epoch`` returned False).
        val_loss: mean validation cross-entropy of the returned model (NaN if diverged).
        val_accuracy: validation accuracy in [0, 1] of the returned model (NaN if diverged).
        train_loss: mean training loss of the last epoch, averaged over its mini-batches as they
            were trained (NaN if diverged).
        epochs_run: epochs started (a diverged epoch counts; a resumed run counts its earlier ones).
        seconds: wall time of the epochs and their validation passes (compilation excluded).
        samples_per_second: training samples per second of the training epochs alone.
        history: per epoch of this call ``{epoch (1-based), train_loss, val_loss, val_accuracy,
            learning_rate, seconds}`` (a resumed run's starts after its checkpoint).
        model: the trained network.
    """

    status: str
    val_loss: float
    val_accuracy: float
    train_loss: float
    epochs_run: int
    seconds: float
    samples_per_second: float
    history: list[dict[str, Any]] = field(default_factory=list)
    model: Model | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of everything but the model; NaN and infinities become None."""
        return {
            "status": self.status,
            "val_loss": _finite(self.val_loss),
            "val_accuracy": _finite(self.val_accuracy),
            "train_loss": _finite(self.train_loss),
            "epochs_run": self.epochs_run,
            "seconds": _finite(self.seconds),
            "samples_per_second": _finite(self.samples_per_second),
            "history": [
                {k: _finite(v) if isinstance(v, float) else v for k, v in h.items()} for h in self.history
            ],
        }


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: a fixed mix of the run's seed and the epoch, below 2³²."""
    return (seed * 2654435761 + epoch * 40503 + 12345) % (2**32)


def train(
    config: Mapping[str, Any],
    data: DatasetLike,
    *,
    on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
    start: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_at: Container[int] | None = None,
    schedule_from: int = 0,
) -> TrainResult:
    """Train one network on ``data`` with ``config`` and evaluate it on the validation split.

    Args:
        config: a full configuration as returned by :func:`core.hparams.resolve` (checked again).
        data: a :class:`core.data.Dataset` (X arrays (n, features), y int labels in 0..C−1).
        on_epoch: called after every epoch with that epoch's history entry; returning False
            stops the run with status ``"cancelled"``.
        start: resume from this checkpoint (of the same configuration): epochs ``start.epoch + 1`` to
            ``epochs`` run, bit for bit as they run in an uninterrupted run.
        on_checkpoint: called with a :class:`~core.nn.checkpoint.Checkpoint` after each epoch in
            ``checkpoint_at`` (every epoch when ``checkpoint_at`` is None), before ``on_epoch``.
        checkpoint_at: the epochs (1-based) after which to call ``on_checkpoint``.
        schedule_from: the epoch the learning-rate schedule counts from (epoch ``e`` trains with the
            schedule's rate at ``e - schedule_from``): a schedule restarted mid-run, as panda mode's
            changes do (:mod:`core.panda`). 0 for a plain run.

    Raises:
        BadInput: ``batch_size`` larger than the training set, or below 2 with batch or
            switchable norm (batch statistics of one sample do not exist); bad labels or shapes; a
            ``start`` of another network or past ``epochs``.
    """
    config = hparams.resolve(dict(config))
    dtype = np.dtype(config["dtype"])
    X = np.ascontiguousarray(data.X_train, dtype=dtype)
    y = np.ascontiguousarray(data.y_train, dtype=np.int64)
    Xv = np.ascontiguousarray(data.X_val, dtype=dtype)
    yv = np.ascontiguousarray(data.y_val, dtype=np.int64)
    n_classes = int(data.n_classes)
    _check_data(X, y, Xv, yv, n_classes)
    n = X.shape[0]
    batch = int(config["batch_size"])
    if batch > n:
        raise BadInput("batch_size", batch, f"at most the training-set size, {n}")
    if batch < 2 and config["norm"] in ("batch", "switchable"):
        raise BadInput("batch_size", batch, f"at least 2 with norm={config['norm']} (batch statistics)")
    warmup((config["dtype"],))

    model = Model.init(config, X.shape[1], n_classes, list(getattr(data, "classes", []) or []))
    mean, scale = getattr(data, "mean", None), getattr(data, "scale", None)
    if mean is not None and scale is not None and len(mean) == X.shape[1] == len(scale):
        # the model carries its input scaling, so that it predicts from raw features
        model.input_mean, model.input_scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
    # one extra row: a last batch of one sample is merged into the previous one
    ws = model.workspace(batch + 1, training=True)
    ev = model.workspace(EVAL_ROWS)

    def validate() -> tuple[float, float]:
        loss, acc = kernels.evaluate(ev, Xv, yv)
        return float(loss), float(acc)

    first = 0
    if start is not None:
        if not 0 <= start.epoch <= int(config["epochs"]):
            raise BadInput("checkpoint epoch", start.epoch, f"in [0, epochs = {config['epochs']}]")
        restore(ws, start)
        first = start.epoch

    status, history = "complete", []
    train_loss = val_loss = val_acc = math.nan
    train_seconds = 0.0
    began = time.perf_counter()
    for epoch in range(first, int(config["epochs"])):
        lr = learning_rate(config, epoch - schedule_from)
        ws.coef[COEF_LEARNING_RATE] = lr
        t0 = time.perf_counter()
        train_loss = kernels.train_epoch(ws, X, y, batch=batch, seed=_epoch_seed(int(config["seed"]), epoch))
        train_seconds += time.perf_counter() - t0
        train_loss = float(train_loss)
        if math.isfinite(train_loss):
            val_loss, val_acc = validate()
        else:
            val_loss = val_acc = math.nan
        entry = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc,
                 "learning_rate": lr, "seconds": time.perf_counter() - t0}
        history.append(entry)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            status = "diverged"
            val_loss = val_acc = train_loss = math.nan
            break
        if on_checkpoint is not None and (checkpoint_at is None or epoch + 1 in checkpoint_at):
            on_checkpoint(capture(ws, epoch + 1))
        if on_epoch is not None and on_epoch(dict(entry)) is False:
            status = "cancelled"
            break
    if start is not None and not history:  # resumed after its last epoch: the checkpoint's own model
        val_loss, val_acc = validate()
    population = config["bn_inference"] == "population" and model.layout.norm in ("batch", "switchable")
    if status != "diverged" and population:
        # the model keeps the population estimate; the final metrics describe that model
        kernels.population_statistics(ws, X, batch=batch)
        val_loss, val_acc = validate()
    seconds = time.perf_counter() - began
    epochs_run = first + len(history)
    return TrainResult(
        status=status,
        val_loss=val_loss,
        val_accuracy=val_acc,
        train_loss=train_loss,
        epochs_run=epochs_run,
        seconds=seconds,
        samples_per_second=len(history) * n / train_seconds if train_seconds > 0 else math.nan,
        history=history,
        model=model,
    )


def _check_data(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, n_classes: int) -> None:
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise BadInput("X_train", X.shape, "a non-empty 2-d array (samples, features)")
    if Xv.ndim != 2 or Xv.shape[1] != X.shape[1] or Xv.shape[0] < 1:
        raise BadInput("X_val", Xv.shape, f"a non-empty 2-d array with {X.shape[1]} columns")
    if y.shape != (X.shape[0],) or yv.shape != (Xv.shape[0],):
        raise BadInput("y", (y.shape, yv.shape), "one label per row of X_train and X_val")
    if n_classes < 2:
        raise BadInput("n_classes", n_classes, "at least 2")
    for name, labels in (("y_train", y), ("y_val", yv)):
        if labels.min() < 0 or labels.max() >= n_classes:
            raise BadInput(name, (int(labels.min()), int(labels.max())), f"labels in 0..{n_classes - 1}")


def warmup(dtypes: tuple[str, ...] | list[str] = ("float32",)) -> None:
    """Compile, or load from numba's on-disk cache, every kernel :func:`train` runs.

    Call it before forking workers: children inherit the compiled code. One tiny training
    step, validation, prediction and population pass per dtype; each kernel has one
    specialisation per dtype, which covers every architecture, norm, activation and optimizer.
    """
    for name in dtypes:
        if name in _warm:
            continue
        if name not in ("float32", "float64"):
            raise BadInput("dtype", name, "one of float32, float64")
        dtype = np.dtype(name)
        config = hparams.resolve(
            {"dtype": name, "layers": 1, "hidden_units": 4, "batch_size": 2, "epochs": 1})
        model = Model.init(config, 3, 2)
        # the same builder as train and predict_proba: the same argument types, so the same kernels
        ws, ev = model.workspace(3, training=True), model.workspace(4)
        X = np.zeros((4, 3), dtype=dtype)
        y = np.array([0, 1, 0, 1], dtype=np.int64)
        kernels.train_epoch(ws, X, y, batch=2, seed=0)
        kernels.evaluate(ev, X, y)
        kernels.population_statistics(ws, X, batch=2)
        kernels.predict(ev, X, np.zeros((4, 2), dtype=dtype))
        kernels.prepare_weights(ev)
        _warm.add(name)
