"""``caviar worker``: run trials from the broker until stopped.

Registered on the ``caviar`` CLI through the entry-point group ``caviar.commands``
(:func:`register`), so the service's CLI never imports this package.

A prefork Celery worker, one single-threaded process per core by default. BLAS and Numba thread counts
are pinned to one *before* numpy or numba are imported (the command re-executes itself with that
environment when needed), and every kernel is compiled or loaded from the cache once in the parent so
that forked children start training at once.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

__all__ = ["register", "worker"]


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Training processes (default: CPU cores)."),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-Q", help="Comma-separated queues (default: CAVIAR_QUEUE or caviar)."),
    ] = None,
    broker: Annotated[
        str | None, typer.Option("--broker", envvar="CAVIAR_BROKER_URL", help="Redis URL (redis:// or rediss://).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="CAVIAR_DATABASE_URL", help="Database URL of the study store."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Worker name in logs and status (default: caviar-PID@HOST)."),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Log level.")] = "INFO",
) -> None:
    """Run trials from the broker: prefork, one single-threaded process per core.

    SIGTERM or Ctrl-C: running trials finish first. A second Ctrl-C stops at once (trials re-run elsewhere).

    Example:
        caviar worker -c 4 --broker redis://:pw@queue:6379/0 --db postgresql://u:pw@db/caviar
    """
    from service.cli import err
    from service.settings import single_thread_env, usable_cores

    if broker:
        os.environ["CAVIAR_BROKER_URL"] = broker
    if db:
        os.environ["CAVIAR_DATABASE_URL"] = db
    single_thread_env()  # before numpy and numba are imported
    from workers.main import run_worker

    hostname = _check_name(name) if name else f"caviar-{os.getpid()}@{socket.gethostname()}"
    code = run_worker(
        hostname=hostname,
        concurrency=concurrency or usable_cores(),
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        loglevel=loglevel,
        log=err,
    )
    raise typer.Exit(code)


#: Longest worker name: it is stored with every trial the worker claims (``trials.worker``), alongside
#: the ``:PID`` of the pool process.
MAX_NAME = 150


def _check_name(name: str) -> str:
    from core.errors import BadInput

    if len(name) > MAX_NAME or not name.isprintable() or any(c.isspace() for c in name):
        raise BadInput(
            "--name", name[:40] + ("…" if len(name) > 40 else ""),
            f"expected at most {MAX_NAME} printable characters without spaces",
        )
    return name


def register(app: typer.Typer) -> None:
    """Add this package's commands to the ``caviar`` CLI (the ``caviar.commands`` entry point)."""
    app.command()(worker)
