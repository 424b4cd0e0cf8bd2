"""Starting a worker: warm the kernels, check the store, start Celery's prefork pool and the reaper."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from rich.console import Console

from service.errors import mask_url

__all__ = ["run_worker", "WARMUP_DTYPES", "PRELOAD"]

#: Kernels compiled (or loaded from the Numba cache) in the parent before the pool forks.
WARMUP_DTYPES = ("float32", "float64")
#: Modules every trial needs, imported once in the parent so each forked child starts its first trial at
#: once (scikit-learn's dataset loaders alone take seconds to import).
PRELOAD = ("service.execute", "service.orchestrate", "core.data", "core.search", "sklearn.datasets")


def _log_format(hostname: str) -> tuple[str, str]:
    name = hostname.replace("%", "%%")
    return (
        f"[%(asctime)s: %(levelname)s/%(processName)s] {name}: %(message)s",
        f"[%(asctime)s: %(levelname)s/%(processName)s] {name}: %(task_name)s[%(task_id)s]: %(message)s",
    )


def run_worker(
    *, hostname: str, concurrency: int, queues: list[str] | None, loglevel: str, log: Console
) -> int:
    """Run a Celery worker in this process until it is stopped; return its exit code.

    Args:
        hostname: the worker's name (``name@host``), shown in every log line and in ``caviar status``.
        concurrency: number of prefork training processes.
        queues: queues to consume (default: the configured queue).
        loglevel: Celery log level.
        log: console for the start-up lines.
    """
    from workers.settings import WorkerSettings

    settings = WorkerSettings.from_env()
    from workers.store import worker_store

    store = worker_store()  # fails with one line now rather than in every trial
    log.print(
        f"{hostname}: broker {mask_url(settings.broker_url)}, store {store.safe_url}, "
        f"{concurrency} process(es), queue(s) {','.join(queues or [settings.queue])}",
        markup=False,
    )
    from core.nn import warmup

    warmup(WARMUP_DTYPES)
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)

    from workers.app import app
    from workers.reaper import Reaper

    # The parent's pooled connections must not cross the fork into the pool children.
    store.engine.dispose()
    fmt, task_fmt = _log_format(hostname)
    app.conf.worker_log_format = fmt
    app.conf.worker_task_log_format = task_fmt
    reaper = Reaper(app, settings, worker_store, queues=queues or [settings.queue])

    def _start_reaper(**_: Any) -> None:
        reaper.start()

    def _stop_reaper(**_: Any) -> None:
        reaper.stop()

    worker_ready.connect(_start_reaper, weak=False)
    worker_shutdown.connect(_stop_reaper, weak=False)
    logging.getLogger("caviar").setLevel(loglevel.upper())
    argv = [
        "worker",
        f"--hostname={hostname}",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--queues={','.join(queues or [settings.queue])}",
        # Neither is needed (no remote control of revokes or clocks), and both cost start-up time.
        "--without-gossip",
        "--without-mingle",
    ]
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
