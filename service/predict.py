"""Predicting with a saved model: reading the rows to predict, and the predictions as records.

:func:`read_rows` reads a data file (or a named dataset), checks its features against the model and
maps its labels, when it has them, onto the model's classes; ``rows="val"`` (or ``"train"``) keeps the
validation (or training) rows of the split the model was trained on, drawn again from the seed its file
records. :func:`predict_rows` gives one record per row and, with labels, the summary: accuracy and
mean cross-entropy computed as training validates, so that on the validation rows of a model saved by
``caviar best --save`` they are the figures the study stored.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import BadInput

__all__ = ["ROWS", "Rows", "class_values", "read_rows", "predict_rows", "csv_header"]

#: Which rows ``--rows`` keeps.
ROWS = ("all", "train", "val")


@dataclass
class Rows:
    """The rows to predict on.

    Attributes:
        X: (n, D) float64 raw features.
        codes: (n,) int64 class codes under the model's classes, or None without labels.
        numbers: (n,) 1-based row numbers in the file (or dataset).
        name: the file (or dataset) they came from.
    """

    X: np.ndarray
    codes: np.ndarray | None
    numbers: np.ndarray
    name: str


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def class_values(model: Any) -> list[Any]:
    """The model's class labels as Python values (its class codes when it has none)."""
    return [_scalar(c) for c in model.classes] or list(range(model.layout.n_classes))


def _codes(model: Any, labels: np.ndarray, name: str) -> np.ndarray:
    """Labels as the model's class codes; BadInput naming the first row with a label it never saw."""
    lookup = {_scalar(c): i for i, c in enumerate(model.classes)}
    codes = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        code = lookup.get(_scalar(label))
        if code is None:  # the label itself is file content: not shown
            raise BadInput(
                f"{name} row {i + 1} label", "a class the model was not trained on",
                f"one of the model's {len(model.classes)} classes (caviar predict --format json lists them)",
            )
        codes[i] = code
    return codes


def read_rows(
    model: Any, *, data: str | os.PathLike[str] | None = None, dataset: str | None = None,
    target: str | None = None, rows: str = "all", root: str | os.PathLike[str] | None = None,
) -> Rows:
    """The rows of a data file (or named dataset) to predict on, checked against ``model``.

    Args:
        model: a :class:`core.nn.Model` (from :meth:`~core.nn.Model.load`).
        data, dataset: a CSV or NPZ file, or a named dataset; exactly one.
        target: the CSV label column (default: the one the model was trained with, else ``label``); a
            file without it is predicted on without a summary.
        rows: ``all``, or ``train`` / ``val``: the rows of that part of the model's split.
        root: when set, ``data`` must lie under it.

    Raises:
        BadInput: both or neither source, an unreadable file, a feature count that is not the model's,
            a label the model never saw, or ``rows`` other than ``all`` for a model whose file records
            no split, a file without labels, or data whose size is not that of the training data.
    """
    from core.data import read_features

    if rows not in ROWS:
        raise BadInput("--rows", rows, "expected one of " + ", ".join(ROWS))
    if (data is None) == (dataset is None):
        raise BadInput("--data", data or dataset, "give exactly one of --data FILE or --dataset NAME")
    trained_on = dict(model.source.get("data") or {})
    if dataset is not None:
        from core.data import load_named

        raw = load_named(dataset)
        name = dataset
        X = np.asarray(raw.X, dtype=np.float64)
        labels: np.ndarray | None = np.asarray([raw.classes[int(c)] for c in raw.y], dtype=object)
    else:
        name = str(data)
        X, labels = read_features(data, target or trained_on.get("target") or "label", root)
    features = model.layout.n_features
    if X.shape[1] != features:
        raise BadInput(
            "--data" if data is not None else "--dataset", name,
            f"rows of {features} features, the model's; it has {X.shape[1]}",
        )
    codes = _codes(model, labels, name) if labels is not None else None
    numbers = np.arange(1, len(X) + 1)
    if rows != "all":
        keep = _split_rows(rows, trained_on, codes, name)
        X, numbers = X[keep], numbers[keep]
        codes = codes[keep] if codes is not None else None
    return Rows(X, codes, numbers, name)


def _split_rows(rows: str, trained_on: dict[str, Any], codes: np.ndarray | None, name: str) -> np.ndarray:
    from core.data import stratified_split

    if "split_seed" not in trained_on or "val_fraction" not in trained_on:
        raise BadInput("--rows", rows, "all: this model's file records no train/validation split")
    if codes is None:
        raise BadInput("--rows", rows, f"all: {name} has no labels, and the split is drawn per class")
    expected = trained_on.get("rows")
    if expected is not None and int(expected) != len(codes):
        raise BadInput(
            "--rows", rows,
            f"all: the model was trained on {expected} rows, {name} has {len(codes)}; the split is theirs",
        )
    fraction, seed = float(trained_on["val_fraction"]), int(trained_on["split_seed"])
    train_idx, val_idx = stratified_split(codes, fraction, seed)
    return val_idx if rows == "val" else train_idx


def predict_rows(model: Any, rows: Rows) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One record per row (``row``, ``label``, ``target`` with labels, ``probabilities`` by class order)
    and the summary with labels (``rows``, ``accuracy``, ``cross_entropy``), else None."""
    proba = model.predict_proba(rows.X)
    best = proba.argmax(axis=1)
    classes = class_values(model)
    out = []
    for i in range(len(rows.X)):
        record: dict[str, Any] = {"row": int(rows.numbers[i]), "label": classes[int(best[i])]}
        if rows.codes is not None:
            record["target"] = classes[int(rows.codes[i])]
        record["probabilities"] = [float(p) for p in proba[i]]
        out.append(record)
    summary = None
    if rows.codes is not None and len(rows.codes):
        loss, accuracy = model.evaluate(rows.X, rows.codes)
        summary = {"rows": len(rows.codes), "accuracy": accuracy,
                   "cross_entropy": loss if math.isfinite(loss) else None}
    return out, summary


def csv_header(model: Any, with_target: bool) -> list[str]:
    """The CSV columns: row, label, target (with labels), then ``p_<class>`` per class."""
    classes = class_values(model)
    return ["row", "label", *(["target"] if with_target else []), *(f"p_{c}" for c in classes)]
