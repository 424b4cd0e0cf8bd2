"""The user's own data: a CSV file with a label column, or an NPZ file with arrays ``X`` and ``y``.

Labels may be any values (numbers or strings); they are encoded as 0..C-1 in sorted order and the
original values are kept as ``classes``. Every problem with a file is a :class:`BadInput` naming the
file, and where it applies the row and column (by number) and what is wrong, never the file's content:
a data path may point anywhere (a symlink to a system file), and on a worker the message is stored in
the trial's error. :func:`check_data_path` is the one gate every read passes (existence, regular file,
the data root); :func:`csv_summary` and :func:`npz_summary` read a file's header, size and labels
without parsing its features; :func:`fingerprint` identifies its content.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import IO

import numpy as np

from core.data.named import RawData, freeze
from core.errors import BadInput

__all__ = [
    "DEFAULT_TARGET",
    "check_data_path",
    "csv_summary",
    "encode_labels",
    "fingerprint",
    "read_features",
    "load_file",
    "npz_summary",
    "read_csv",
    "read_npz",
]

#: The label column of a CSV file when none is named.
DEFAULT_TARGET = "label"

#: How many parsed files a process keeps (workers read the same file for every trial).
_CACHE_SIZE = 4
_cache: OrderedDict[tuple, RawData] = OrderedDict()

#: Bytes read at a time by :func:`fingerprint`.
_CHUNK = 1 << 20


def check_data_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The file to read for ``path``: an existing regular file, and under ``root`` when one is given.

    The root check resolves symlinks (of the path and of the root), so a link inside the root that
    points outside it is refused; it comes before the existence check, so that nothing is revealed
    about files outside the root.

    Args:
        path: the data file as given.
        root: when not None, the only directory (and its subdirectories) data may be read from.

    Returns:
        The path to open: ``path`` itself, or with a root its resolved form (what was checked).

    Raises:
        BadInput: field ``"data"``: outside the root, missing, or not a regular file.
    """
    file = Path(path)
    if root is not None:
        try:
            base, real = Path(root).resolve(), file.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise BadInput("data", str(path), "expected an existing .csv or .npz file") from None
        if not real.is_relative_to(base):
            raise BadInput(
                "data", str(path), f"expected a file under the data root {base} (symlinks resolved)"
            )
        file = real
    try:
        file.stat()
    except OSError:
        raise BadInput("data", str(path), "expected an existing .csv or .npz file") from None
    if file.is_dir():
        raise BadInput("data", str(path), "expected a .csv or .npz file, not a directory")
    if not file.is_file():
        raise BadInput("data", str(path), "expected a regular .csv or .npz file (not a device or pipe)")
    return file


def _is_npz(file: Path) -> bool:
    return file.suffix.lower() == ".npz"


def load_file(
    path: str | os.PathLike[str], target: str | None = None, root: str | os.PathLike[str] | None = None
) -> RawData:
    """Read a ``.csv`` or ``.npz`` file, memoized while the file is unchanged.

    Args:
        path: the file. ``.npz`` is read as NumPy arrays; anything else as CSV.
        target: the CSV label column (default ``"label"``); ignored for NPZ files.
        root: read only files under this directory (see :func:`check_data_path`).

    Raises:
        BadInput: the file is outside ``root``, missing, unreadable or malformed, or its labels cannot
            be split.
    """
    file = check_data_path(path, root)
    stat = file.stat()
    is_npz = _is_npz(file)
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


def fingerprint(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """``"<size>:<sha256 hex>"`` of a data file's bytes, read in chunks (any size, little memory).

    Size and hash come from the same read, so they describe one version of the file. Two files with
    equal fingerprints hold the same bytes; a changed file (even with the same size and time stamp)
    gets a different one.

    Raises:
        BadInput: as :func:`check_data_path`, or the file cannot be read.
    """
    file = check_data_path(path, root)
    digest, size = hashlib.sha256(), 0
    try:
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise BadInput("data", str(path), f"expected a readable file ({exc.strerror})") from None
    return f"{size}:{digest.hexdigest()}"


def encode_labels(labels: np.ndarray, where: str) -> tuple[np.ndarray, list]:
    """Map labels to codes 0..C-1 in sorted order.

    Args:
        labels: (N,) array of any sortable values (numbers or strings).
        where: the field to name in errors, e.g. ``"data.csv column 'label'"``.

    Returns:
        ``(y, classes)``: (N,) int64 codes and the C original values as Python scalars.

    Raises:
        BadInput: fewer than two distinct labels (the label itself is not shown: it is file content).
    """
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        shown = "1 distinct label" if len(classes) else "no labels"
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


def _not_a_number(cell: str) -> str:
    """What is wrong with a feature field, in words that do not repeat it."""
    return "an empty field" if not cell.strip() else "text that is not a number"


def _csv_rows(
    handle: IO[str], name: str, target: str, *, parse: bool, target_optional: bool = False
) -> tuple[list[list[float]], list[str], list[int], int, int]:
    """Scan an open CSV file: the header, then every row's width and label (and features if ``parse``).

    With ``target_optional`` a header without the ``target`` column is read as features only (then the
    label texts are empty and the label column's index is −1).

    Returns:
        ``(rows, labels, line_numbers, features, label_at)``: the features of each row as floats (empty
        lists unless ``parse``), the label texts, the line of each row, the feature count and the label
        column's index.
    """
    lead: list[str] = []
    header_line = ""
    for line in handle:  # the first non-blank line decides the delimiter
        lead.append(line)
        if line.strip():
            header_line = line
            break
    if not header_line:
        raise BadInput("data", name, "expected a CSV file with a header row and data rows; it is empty")
    delimiter = ","
    if "," not in header_line:
        delimiter = ";" if ";" in header_line else ("\t" if "\t" in header_line else ",")
    reader = csv.reader(itertools.chain(lead, handle), delimiter=delimiter)
    header: list[str] = []
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if all(_is_number(cell) for cell in header) and (target_optional or target not in header):
        raise BadInput("data", name, "expected a header row naming the columns; the first row is numbers")
    if target not in header and not target_optional:
        count = f"{len(header)} column" + ("s" if len(header) != 1 else "")
        raise BadInput(
            "target", target, f"expected a column of the header of {name} ({count}, none named so)"
        )
    if header.count(target) > 1:
        raise BadInput("target", target, f"expected a column name that appears once in the header of {name}")
    label_at = header.index(target) if target in header else -1
    width = len(header)
    if width < 2 and label_at >= 0:
        raise BadInput("data", name, f"expected at least one feature column besides {target!r}")
    # 1-based positions of the feature columns in the file, to name a column without its header text
    columns = [i + 1 for i in range(width) if i != label_at]
    rows: list[list[float]] = []
    labels: list[str] = []
    line_numbers: list[int] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines, e.g. at the end of the file
        where = f"{name} row {len(line_numbers) + 1} (line {reader.line_num})"
        if len(row) != width:
            raise BadInput(where, f"{len(row)} fields", f"expected {width} fields like the header")
        label = row[label_at].strip() if label_at >= 0 else ""
        if not label and label_at >= 0:
            raise BadInput(
                f"{where} column {label_at + 1} ({target!r})", "an empty field", "expected a label"
            )
        if parse:
            if label_at >= 0:
                del row[label_at]
            try:
                rows.append([float(cell) for cell in row])
            except ValueError:
                for column, cell in zip(columns, row, strict=True):
                    if not _is_number(cell):
                        raise BadInput(
                            f"{where} column {column}", _not_a_number(cell), "expected a number"
                        ) from None
                raise
        if label_at >= 0:
            labels.append(label)
        line_numbers.append(reader.line_num)
    if not line_numbers:
        raise BadInput("data", name, "expected data rows after the header; there are none")
    return rows, labels, line_numbers, width - (label_at >= 0), label_at


def _scan_csv(
    path: str | os.PathLike[str], target: str, *, parse: bool, target_optional: bool = False
) -> tuple[list[list[float]], list[str], list[int], int, int]:
    """:func:`_csv_rows` of the file at ``path``, with read errors as :class:`BadInput`."""
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _csv_rows(handle, name, target, parse=parse, target_optional=target_optional)
    except UnicodeDecodeError:
        raise BadInput("data", name, "expected a UTF-8 text CSV file with a header row") from None
    except csv.Error:  # a NUL byte (a binary file) or an over-long field; the message is not shown
        raise BadInput(
            "data", name, "expected a text CSV file (it has a NUL byte or a field over the csv limit)"
        ) from None
    except OSError as exc:
        raise BadInput("data", name, f"expected a readable file ({exc.strerror})") from None


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
            feature that is not a finite number (naming file, row and column number), or fewer than 2
            classes. No message repeats the file's content.
    """
    X, labels = _parse_csv(path, target, target_optional=False)
    y, classes = encode_labels(_label_values(labels), f"{path} column {target!r}")
    return freeze(X, y, classes)


def _parse_csv(
    path: str | os.PathLike[str], target: str, *, target_optional: bool
) -> tuple[np.ndarray, list[str]]:
    """(N, D) float64 features, all finite, and the label texts (empty without a label column)."""
    name = str(path)
    rows, labels, line_numbers, features, label_at = _scan_csv(
        path, target, parse=True, target_optional=target_optional
    )
    X = np.array(rows, dtype=np.float64).reshape(len(line_numbers), features)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row_at, col_at = (int(i) for i in bad[0])
        # 1-based file column: the label column was taken out
        column = col_at + 1 if label_at < 0 or col_at < label_at else col_at + 2
        value = X[row_at, col_at]
        raise BadInput(
            f"{name} row {row_at + 1} (line {line_numbers[row_at]}) column {column}",
            "NaN" if np.isnan(value) else "an infinite number", "expected a finite number",
        )
    return X, labels


def read_features(
    path: str | os.PathLike[str], target: str = DEFAULT_TARGET, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features to predict on, and their labels when the file has them: a CSV file (the ``target`` column,
    when present, holds labels; every other column is a feature) or an NPZ file (``X``, and ``y`` if any).

    Unlike :func:`load_file`, labels are optional and not encoded: they are returned as read (CSV labels
    as integers, else numbers, else strings) for the caller to map onto a model's classes.

    Returns:
        ``(X, labels)``: (N, D) float64 finite features and (N,) labels or None.

    Raises:
        BadInput: as :func:`read_csv` and :func:`read_npz`, but for the label column being absent.
    """
    file = check_data_path(path, root)
    if _is_npz(file):
        archive = _open_npz(file, require=("X",))
        try:
            X = np.asarray(archive["X"])
            labels = np.asarray(archive["y"]) if "y" in archive.files else None
        except ValueError as exc:  # an object array: it would need pickle
            raise _not_npz(str(path), exc) from None
        finally:
            archive.close()
        if X.ndim != 2 or X.shape[0] < 1 or X.dtype.kind not in "iuf":
            raise BadInput(f"{path} X", f"{X.dtype}{list(X.shape)}", "a non-empty 2-d array of numbers")
        X = X.astype(np.float64)
        if not np.isfinite(X).all():
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise BadInput(f"{path} X row {row + 1}", "a value that is not finite", "finite numbers")
        if labels is not None and labels.shape != (X.shape[0],):
            raise BadInput(f"{path} y", list(labels.shape), f"one label per row of X ({X.shape[0]})")
        return X, labels
    X, texts = _parse_csv(file, target, target_optional=True)
    return X, (_label_values(texts) if texts else None)


def csv_summary(path: str | os.PathLike[str], target: str = DEFAULT_TARGET) -> tuple[int, np.ndarray]:
    """The feature count and rows per class of a CSV file, without parsing its features.

    The header, every row's width and every label are checked as :func:`read_csv` checks them, and
    the labels are encoded the same way, so the class counts are those a full read gives.

    Returns:
        ``(features, counts)``: D and the (C,) int64 rows per class code.

    Raises:
        BadInput: as :func:`read_csv`, except for feature values (checked when the file is loaded).
    """
    _rows, labels, _lines, features, _label_at = _scan_csv(path, target, parse=False)
    y, _classes = encode_labels(_label_values(labels), f"{path} column {target!r}")
    return features, np.bincount(y)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _not_npz(name: str, exc: BaseException) -> BadInput:
    """The error for a file numpy cannot read as an NPZ archive (numpy's message may quote the file)."""
    if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) and exc.strerror:
        why = exc.strerror
    elif isinstance(exc, EOFError):
        why = "it is empty or truncated"
    else:
        why = "it is not a zip of .npy arrays without pickled objects"
    return BadInput("data", name, f"expected an NPZ file written by numpy.savez ({why})")


_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def _open_npz(path: str | os.PathLike[str], require: tuple[str, ...] = ("X", "y")) -> np.lib.npyio.NpzFile:
    """The archive at ``path``, holding the arrays ``require`` names (the caller closes it)."""
    name = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise _not_npz(name, exc) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise BadInput("data", name, "expected an NPZ file with arrays X and y, not a single .npy array")
    missing = [k for k in require if k not in archive.files]
    if missing:
        archive.close()
        count = len(archive.files)
        wanted = " and ".join(map(repr, require))
        raise BadInput(
            "data", name, f"expected an NPZ file with arrays {wanted}; it has {count} "
            f"array{'s' if count != 1 else ''}, none named " + " or ".join(repr(k) for k in missing),
        )
    return archive


def _check_npz_shapes(name: str, shape: tuple[int, ...], dtype: np.dtype, labels: np.ndarray) -> None:
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise BadInput(
            f"{name} array 'X'", f"shape {shape}", "expected a 2-D array (rows, features), not empty"
        )
    if labels.ndim != 1 or len(labels) != shape[0]:
        raise BadInput(
            f"{name} array 'y'",
            f"shape {labels.shape}",
            f"expected a 1-D array of {shape[0]} labels, one per row of X",
        )
    if dtype.kind not in "biuf":
        raise BadInput(f"{name} array 'X'", f"dtype {dtype}", "expected numbers (bool, integer or float)")


def read_npz(path: str | os.PathLike[str]) -> RawData:
    """Read an NPZ file holding ``X`` (N, D) numbers and ``y`` (N,) labels of any kind.

    Raises:
        BadInput: unreadable or not an NPZ file, missing arrays, wrong shapes, non-finite features,
            or fewer than 2 classes.
    """
    name = str(path)
    archive = _open_npz(path)
    try:
        X, labels = archive["X"], archive["y"]
    except _NPZ_ERRORS as exc:
        raise _not_npz(name, exc) from None
    finally:
        archive.close()
    _check_npz_shapes(name, X.shape, X.dtype, labels)
    X = X.astype(np.float64)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        value = X[row, col]
        raise BadInput(f"{name} X[{row}, {col}]", "NaN" if np.isnan(value) else "an infinite number",
                       "expected a finite number")
    y, classes = encode_labels(labels, f"{name} array 'y'")
    return freeze(X, y, classes)


def _npy_header(archive: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of one array from its .npy header alone, or None for a format version we do not
    parse (then the caller loads the array)."""
    member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
    with archive.zip.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            return None
    return tuple(shape), np.dtype(dtype)


def npz_summary(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """The feature count and rows per class of an NPZ file; ``X`` is described by its header, not loaded.

    Returns:
        ``(features, counts)``: D and the (C,) int64 rows per class code.

    Raises:
        BadInput: as :func:`read_npz`, except for feature values (checked when the file is loaded).
    """
    name = str(path)
    archive = _open_npz(path)
    try:
        header = _npy_header(archive, "X")
        if header is None:
            X = archive["X"]
            header = X.shape, X.dtype
        labels = archive["y"]
    except _NPZ_ERRORS as exc:
        raise _not_npz(name, exc) from None
    finally:
        archive.close()
    shape, dtype = header
    _check_npz_shapes(name, shape, dtype, labels)
    y, _classes = encode_labels(labels, f"{name} array 'y'")
    return int(shape[1]), np.bincount(y)
