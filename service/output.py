"""Rendering rows for read commands: a table for people, JSON and CSV for programs.

Every read command prints through :func:`render` so that ``--format table|json|csv`` behaves the
same everywhere: tables go through rich, JSON is strict (NaN and infinity become ``null``), CSV has
a header row.

Consoles come from :func:`make_console`, so that ``NO_COLOR`` (any non-empty value, see
https://no-color.org) gives plain text without any escape code; :func:`interactive` says whether a
progress bar may be drawn (a terminal, and no ``NO_COLOR``).

>>> print(to_csv([{"a": 1, "b": float("nan")}], ["a", "b"]), end="")
a,b
1,nan
>>> dumps({"loss": float("inf"), "n": 3})
'{"loss": null, "n": 3}'
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.errors import BadInput

__all__ = [
    "FORMATS",
    "Column",
    "check_format",
    "dumps",
    "format_value",
    "interactive",
    "json_safe",
    "make_console",
    "no_color",
    "render",
    "stdout_console",
    "to_csv",
]

#: The formats every read command accepts.
FORMATS: tuple[str, ...] = ("table", "json", "csv")

#: A column is a row key, or ``(key, header)`` to show a different heading.
Column = str | tuple[str, str]

#: Width of tables written to a pipe or file, where no terminal says how wide to be.
_PIPE_WIDTH = 200


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    """Return ``fmt`` if it is one of ``allowed``, else raise BadInput naming ``--format``."""
    if fmt not in allowed:
        raise BadInput("--format", fmt, "expected one of " + ", ".join(allowed))
    return fmt


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types: NaN/inf → None, NumPy scalars and arrays → Python, times → ISO text."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # NumPy scalars and arrays, without importing NumPy here
        return json_safe(value.tolist())
    return str(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (see :func:`json_safe`); never emits NaN or Infinity."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False, ensure_ascii=False)


def format_value(value: Any) -> str:
    """One table cell: compact numbers, ``-`` for missing values, times to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if 10_000 <= abs(value) < 1e7:
            return f"{value:,.0f}"
        if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (Mapping, list, tuple)):
        return dumps(value)
    if hasattr(value, "item"):
        return format_value(value.item())
    return str(value)


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None) -> list[tuple[str, str]]:
    if columns is None:
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        return [(k, k) for k in keys]
    return [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None) -> str:
    """CSV text with a header of column keys; None is an empty field, lists and dicts are JSON."""
    cols = _columns(rows, columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key for key, _ in cols])
    for row in rows:
        cells = []
        for key, _ in cols:
            value = row.get(key)
            if value is None:
                cells.append("")
            elif isinstance(value, (Mapping, list, tuple)):
                cells.append(dumps(value))
            else:
                cells.append(str(json_safe(value)) if hasattr(value, "tolist") else str(value))
        writer.writerow(cells)
    return out.getvalue()


def no_color() -> bool:
    """True when ``NO_COLOR`` is set to a non-empty value (https://no-color.org): no colour, no bars."""
    return os.environ.get("NO_COLOR", "") != ""


def make_console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich console on stdout (or stderr) that honours ``NO_COLOR``: under it no style is rendered at
    all (no colour, bold or underline codes), and :func:`interactive` is False, so no bar is drawn.

    Rich already writes plain text when the stream is not a terminal. ``options`` go to
    :class:`rich.console.Console`.
    """
    if no_color():
        options.update(color_system=None, no_color=True)
    return Console(stderr=stderr, **options)


def interactive(console: Console) -> bool:
    """Whether live output (a progress bar, a spinner) may be drawn on ``console``: it is a terminal and
    ``NO_COLOR`` is not set."""
    return console.is_terminal and not no_color()


def stdout_console() -> Console:
    """A console on stdout; when stdout is not a terminal, wide enough that tables never wrap."""
    console = make_console(highlight=False, emoji=False)
    if not console.is_terminal:
        console = make_console(highlight=False, emoji=False, width=_PIPE_WIDTH)
    return console


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None,
          *, title: str | None = None) -> Table:
    """A rich table of ``rows``; numeric columns are right-aligned."""
    cols = _columns(rows, columns)
    grid = Table(title=title, title_justify="left", header_style="bold")
    for key, header in cols:
        numeric = any(
            isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool) for row in rows
        )
        grid.add_column(header, justify="right" if numeric else "left")
    for row in rows:  # cells as Text: a value such as "[tool.caviar]" is shown as written, not as markup
        grid.add_row(*(Text(format_value(row.get(key))) for key, _ in cols))
    return grid


def render(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column] | None = None,
    fmt: str = "table",
    *,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``rows`` on stdout as a table, a JSON array or CSV.

    Args:
        rows: one mapping per row.
        columns: which keys to show, in order (default: every key, in first-seen order). JSON
            output keeps every key of every row; ``columns`` shapes the table and the CSV.
        fmt: ``table``, ``json`` or ``csv``.
        title: a heading over the table (table format only).
        console: where tables are printed (default :func:`stdout_console`).

    Raises:
        BadInput: an unknown ``fmt``.
    """
    check_format(fmt)
    if fmt == "json":
        sys.stdout.write(dumps(list(rows)) + "\n")
    elif fmt == "csv":
        sys.stdout.write(to_csv(rows, columns))
    else:
        (console or stdout_console()).print(table(rows, columns, title=title))
