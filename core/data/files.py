"""The user's own data: a CSV file with a label column, or an NPZ file with arrays ``X`` and ``y``.

Labels may be any values (numbers or strings); they are encoded as 0..C-1 in sorted order and the
original values are kept as ``classes``. Every problem with a file is a :class:`BadInput` naming the
file, and where it applies the column and row.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from core.data.named import RawData, freeze
from core.errors import BadInput

__all__ = ["DEFAULT_TARGET", "encode_labels", "load_file", "read_csv", "read_npz"]

#: The label column of a CSV file when none is named.
DEFAULT_TARGET = "label"

#: How many parsed files a process keeps (workers read the same file for every trial).
_CACHE_SIZE = 4
_cache: OrderedDict[tuple, RawData] = OrderedDict()


def load_file(path: str | os.PathLike[str], target: str | None = None) -> RawData:
    """Read a ``.csv`` or ``.npz`` file, memoized while the file is unchanged.

    Args:
        path: the file. ``.npz`` is read as NumPy arrays; anything else as CSV.
        target: the CSV label column (default ``"label"``); ignored for NPZ files.

    Raises:
        BadInput: the file is missing, unreadable or malformed, or its labels cannot be split.
    """
    file = Path(path)
    try:
        stat = file.stat()
    except OSError:
        raise BadInput("data", str(path), "expected an existing .csv or .npz file") from None
    if not file.is_file():
        raise BadInput("data", str(path), "expected a .csv or .npz file, not a directory")
    is_npz = file.suffix.lower() == ".npz"
    column = None if is_npz else (target or DEFAULT_TARGET)
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size, column)
    raw = _cache.get(key)
    if raw is None:
        raw = read_npz(file) if is_npz else read_csv(file, column or DEFAULT_TARGET)
        _cache[key] = raw
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return raw


def encode_labels(labels: np.ndarray, where: str) -> tuple[np.ndarray, list]:
    """Map labels to codes 0..C-1 in sorted order.

    Args:
        labels: (N,) array of any sortable values (numbers or strings).
        where: the field to name in errors, e.g. ``"data.csv column 'label'"``.

    Returns:
        ``(y, classes)``: (N,) int64 codes and the C original values as Python scalars.

    Raises:
        BadInput: fewer than two distinct labels.
    """
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        shown = classes[0].item() if len(classes) else "(no rows)"
        raise BadInput(where, shown, "expected at least 2 different labels (classes)")
    return y.astype(np.int64).reshape(-1), [c.item() for c in classes]


def _label_values(texts: list[str]) -> np.ndarray:
    """CSV label strings as integers, else numbers, else the strings themselves."""
    for kind in (int, float):
        try:
            return np.array([kind(t) for t in texts])
        except ValueError:
            continue
    return np.array(texts)


def read_csv(path: str | os.PathLike[str], target: str = DEFAULT_TARGET) -> RawData:
    """Parse a CSV file with a header row, numeric features and one label column.

    The delimiter is a comma, or a semicolon or tab when the header has no comma.

    Args:
        path: the file.
        target: the name of the label column; every other column is a feature.

    Returns:
        (N, D) float64 features and encoded labels.

    Raises:
        BadInput: unreadable file, no header, absent label column, a row of the wrong length, a
            feature that is not a finite number (naming file, row and column), or fewer than 2 classes.
    """
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise BadInput("data", name, "expected a UTF-8 text CSV file with a header row") from None
    except OSError as exc:
        raise BadInput("data", name, f"expected a readable file ({exc.strerror})") from None
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    if not header_line:
        raise BadInput("data", name, "expected a CSV file with a header row and data rows; it is empty")
    delimiter = ","
    if "," not in header_line:
        delimiter = ";" if ";" in header_line else ("\t" if "\t" in header_line else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] = []
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if target not in header:
        if all(_is_number(cell) for cell in header):
            raise BadInput("data", name, "expected a header row naming the columns; the first row is numbers")
        raise BadInput(
            "target", target, f"expected a column of {name}, one of: " + ", ".join(header)
        )
    if header.count(target) > 1:
        raise BadInput("target", target, f"expected a column name that appears once in the header of {name}")
    label_at = header.index(target)
    feature_names = [c for i, c in enumerate(header) if i != label_at]
    if not feature_names:
        raise BadInput("data", name, f"expected at least one feature column besides {target!r}")
    rows: list[list[float]] = []
    labels: list[str] = []
    line_numbers: list[int] = []
    width = len(header)
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines, e.g. at the end of the file
        where = f"{name} row {len(rows) + 1} (line {reader.line_num})"
        if len(row) != width:
            raise BadInput(
                where, delimiter.join(row), f"expected {width} fields like the header, got {len(row)}"
            )
        label = row[label_at].strip()
        if not label:
            raise BadInput(f"{where} column {target!r}", label, "expected a label, not an empty field")
        del row[label_at]
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            for column, cell in zip(feature_names, row, strict=True):
                if not _is_number(cell):
                    raise BadInput(f"{where} column {column!r}", cell, "expected a number") from None
            raise
        rows.append(values)
        labels.append(label)
        line_numbers.append(reader.line_num)
    if not rows:
        raise BadInput("data", name, "expected data rows after the header; there are none")
    X = np.array(rows, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row_at, col_at = (int(i) for i in bad[0])
        raise BadInput(
            f"{name} row {row_at + 1} (line {line_numbers[row_at]}) column {feature_names[col_at]!r}",
            f"{X[row_at, col_at]}", "expected a finite number",
        )
    y, classes = encode_labels(_label_values(labels), f"{name} column {target!r}")
    return freeze(X, y, classes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_npz(path: str | os.PathLike[str]) -> RawData:
    """Read an NPZ file holding ``X`` (N, D) numbers and ``y`` (N,) labels of any kind.

    Raises:
        BadInput: unreadable or not an NPZ file, missing arrays, wrong shapes, non-finite features,
            or fewer than 2 classes.
    """
    name = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise BadInput(
                    "data", name, "expected an NPZ file with arrays 'X' and 'y'; it has: "
                    + (", ".join(archive.files) or "no arrays"),
                )
            X, labels = archive["X"], archive["y"]
    except BadInput:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput("data", name, f"expected an NPZ file written by numpy.savez ({detail})") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise BadInput(
            f"{name} array 'X'", f"shape {X.shape}", "expected a 2-D array (rows, features), not empty"
        )
    if labels.ndim != 1 or len(labels) != len(X):
        raise BadInput(
            f"{name} array 'y'",
            f"shape {labels.shape}",
            f"expected a 1-D array of {len(X)} labels, one per row of X",
        )
    if X.dtype.kind not in "biuf":
        raise BadInput(f"{name} array 'X'", f"dtype {X.dtype}", "expected numbers (bool, integer or float)")
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise BadInput(f"{name} X[{row}, {col}]", X[row, col].item(), "expected a finite number")
    y, classes = encode_labels(labels, f"{name} array 'y'")
    return freeze(X, y, classes)
