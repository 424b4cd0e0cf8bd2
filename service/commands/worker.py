"""``caviar worker``: run trials from the broker until stopped.

A prefork Celery worker, one single-threaded process per core by default. BLAS and Numba thread counts
are pinned to one *before* numpy or numba are imported (the command re-executes itself with that
environment when needed), and every kernel is compiled or loaded from the cache once in the parent so
that forked children start training at once (``../shared/notes/numba.md``).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import typer

from service.cli import app, err

#: Variables that must be 1 in every training process; read by BLAS and Numba at import time.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
#: Set in the re-executed process so it never re-executes twice.
_REEXEC_MARK = "CAVIAR_WORKER_REEXEC"


def _single_threaded_env() -> dict[str, str] | None:
    """The environment to re-execute with, or None when this process is already single-threaded."""
    if all(os.environ.get(v) == "1" for v in THREAD_VARS):
        return None
    env = dict(os.environ)
    env.update({v: "1" for v in THREAD_VARS})
    env[_REEXEC_MARK] = "1"
    return env


def _reexec(env: dict[str, str]) -> None:
    # Thread pools size themselves when numpy/numba load, which may already have happened in this
    # process (other commands import them), so start afresh with the right environment.
    args = [sys.executable, "-c", "from service.cli import main; main()", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)


def _cores() -> int:
    """CPU cores this process may use (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@app.command()
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
    if broker:
        os.environ["CAVIAR_BROKER_URL"] = broker
    if db:
        os.environ["CAVIAR_DATABASE_URL"] = db
    env = _single_threaded_env()
    if env is not None and not os.environ.get(_REEXEC_MARK):
        _reexec(env)
    from workers.main import run_worker

    hostname = name or f"caviar-{os.getpid()}@{socket.gethostname()}"
    code = run_worker(
        hostname=hostname,
        concurrency=concurrency or _cores(),
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        loglevel=loglevel,
        log=err,
    )
    raise typer.Exit(code)
