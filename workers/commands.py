"""``caviar worker``: run trials from the broker until stopped.

Registered on the ``caviar`` CLI through the entry-point group ``caviar.commands``
(:func:`register`), so the service's CLI never imports this package.

A prefork Celery worker, one single-threaded process per core by default. BLAS and Numba thread counts
are pinned to one *before* numpy or numba are imported (the command re-executes itself with that
environment when needed), and every kernel is compiled or loaded from the cache once in the parent so
that forked children start training at once.

``--broker`` and ``--db`` are the CLI's shared options (flag > environment variable > config file >
default, :mod:`service.config_file`); the queue falls back on the config file through
:class:`workers.settings.WorkerSettings`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Annotated, Any

import typer

from service.commands._options import broker_option, db_option, quiet_option

__all__ = ["register", "worker"]

WorkerBrokerOption = broker_option()
WorkerDbOption = db_option("Database URL of the study store")
QuietOption = quiet_option("warnings (Celery logs at WARNING, without its banner or the start-up line)")


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Training processes (default: CPU cores)."),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues", "-Q",
            help="Comma-separated queues (default: CAVIAR_QUEUE, else the config file's queue, else caviar).",
        ),
    ] = None,
    broker: WorkerBrokerOption = None,
    db: WorkerDbOption = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Worker name in logs and status (default: caviar-PID@HOST)."),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Log level.")] = "INFO",
    quiet: QuietOption = False,
) -> None:
    """Run trials from the broker: prefork, one single-threaded process per core.

    SIGTERM or Ctrl-C: running trials finish first. A second Ctrl-C stops at once (trials re-run elsewhere).

    With -q/--quiet Celery logs at WARNING (or at --loglevel when that is ERROR or CRITICAL), without its
    banner or caviar's start-up line; warnings and errors still print. With NO_COLOR set (any non-empty
    value) its log lines are not coloured.

    Example:
        caviar worker -c 4 --broker redis://:pw@queue:6379/0 --db postgresql://u:pw@db/caviar
    """
    from service.cli import err
    from service.output import make_console, no_color
    from service.settings import single_thread_env, usable_cores

    if no_color():
        # Celery reads NO_COLOR as a boolean flag (and refuses "always"): any non-empty value means no colour.
        os.environ["NO_COLOR"] = "1"
    if broker:
        os.environ["CAVIAR_BROKER_URL"] = broker
    if db:
        os.environ["CAVIAR_DATABASE_URL"] = db
    single_thread_env()  # before numpy and numba are imported
    from workers.main import run_worker

    hostname = _check_name(name) if name else f"caviar-{os.getpid()}@{socket.gethostname()}"
    if quiet:
        loglevel = _at_least_warning(loglevel)
        _no_banner()
    code = run_worker(
        hostname=hostname,
        concurrency=concurrency or usable_cores(),
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        loglevel=loglevel,
        log=make_console(stderr=True, quiet=True) if quiet else err,
    )
    raise typer.Exit(code)


def _at_least_warning(loglevel: str) -> str:
    """``loglevel``, raised to WARNING when it is more verbose (an unknown name is left to Celery)."""
    level = logging.getLevelName(loglevel.strip().upper())
    if isinstance(level, int) and level < logging.WARNING:
        return "WARNING"
    return loglevel


def _no_banner() -> None:
    """Keep Celery's start-up banner off (its own ``celery --quiet``): the worker reads ``quiet`` once,
    when it starts, right after sending ``celeryd_init`` with itself as ``instance``."""
    from celery.signals import celeryd_init

    def quiet_worker(instance: Any = None, **_: Any) -> None:
        if instance is not None:
            instance.quiet = True

    celeryd_init.connect(quiet_worker, weak=False)


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
