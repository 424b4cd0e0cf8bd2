"""``caviar config``: the effective database, broker and queue, and where each comes from."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from service.cli import app

_FORMATS = ("table", "json")
_FLAG_HELP = "A value given as a command's flag (it wins over everything else)"


@app.command()
def config(
    db: Annotated[str | None, typer.Option("--db", help=_FLAG_HELP, show_default=False)] = None,
    broker: Annotated[str | None, typer.Option("--broker", help=_FLAG_HELP, show_default=False)] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help=_FLAG_HELP + " (worker: -Q/--queues)", show_default=False)
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
) -> None:
    r"""Show the effective db, broker and queue, passwords masked, and where each comes from.

    Precedence, highest first: the flag (--db, --broker, --queue/--queues), the environment variable
    (CAVIAR_DATABASE_URL, CAVIAR_BROKER_URL, CAVIAR_QUEUE), the config file, the default
    (sqlite:///./caviar.db, redis://localhost:6379/0, caviar).

    The config file is caviar.toml in the working directory, with top-level keys, or else the
    \[tool.caviar] table of pyproject.toml there; it may set only db, broker and queue, each a string:

        db = "postgresql://caviar@db.internal/caviar"
        broker = "redis://queue.internal:6379/0"
        queue = "gpu"

    A bad file (invalid TOML, an unknown key, a value that is not a string) exits 2 naming the file and
    the key. `caviar run` uses a local pool unless a broker comes from the flag, the variable or the file.

    `--format json` gives a list of objects with setting, value, source (flag, env, file or default)
    and origin (the flag, the variable, the file, or null).

    Example:
        caviar config --format json
    """
    from service.config_file import KEYS, load, resolve
    from service.output import check_format, dumps, render, stdout_console

    check_format(fmt, _FORMATS)
    flags = {"db": db, "broker": broker, "queue": queue}
    found = [resolve(key, flags[key]) for key in KEYS]
    if fmt == "json":
        rows: list[dict[str, Any]] = [
            {"setting": r.key, "value": r.shown, "source": r.source, "origin": r.origin} for r in found
        ]
        sys.stdout.write(dumps(rows) + "\n")
        return
    rows = [{"setting": r.key, "value": r.shown, "source": r.describe()} for r in found]
    out = stdout_console()
    render(rows, ["setting", "value", "source"], "table", console=out)
    file = load()
    where = file.label if file is not None else "none (no caviar.toml, no [tool.caviar] in pyproject.toml)"
    out.print(f"config file: {where}", markup=False)
    out.print("precedence: flag > environment variable > config file > default", markup=False)
