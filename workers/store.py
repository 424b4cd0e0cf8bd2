"""One study-store handle per worker process, never shared across ``fork``.

A pooled connection inherited from the parent would be used by two processes at once (and closed by
whichever exits first), so a forked pool child forgets the parent's handle and opens its own.

On PostgreSQL, workers commit asynchronously (``synchronous_commit=off``): a commit returns before
its WAL record is flushed, which roughly halves the cost of the half-dozen small transactions of a
trial. The database stays consistent; a database crash can only forget the last fraction of a second of
worker writes, and every such write is recoverable: a forgotten claim or result leaves the trial
queued or running with a stale heartbeat, which the reaper re-runs, and a forgotten round is
re-created by the next advance. Set ``CAVIAR_SYNC_COMMIT=1`` to keep synchronous commits.
"""

from __future__ import annotations

import os

from celery.signals import worker_process_init
from sqlalchemy.engine import make_url

from service.settings import WORKER_RETRY_SECONDS
from service.store import Store, database_url, open_store

__all__ = ["worker_store", "worker_database_url"]

_store: Store | None = None
_pid: int | None = None


def worker_database_url() -> str:
    """``CAVIAR_DATABASE_URL`` (or the default), with asynchronous commit on PostgreSQL (see above)."""
    url = database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or os.environ.get("CAVIAR_SYNC_COMMIT") == "1":
        return url
    if "options" in parsed.query:  # the user chose server options; keep them as given
        return url
    parsed = parsed.update_query_dict({"options": "-c synchronous_commit=off"})
    return parsed.render_as_string(hide_password=False)


def worker_store() -> Store:
    """This process's store (``CAVIAR_DATABASE_URL``), opened on first use with write retries."""
    global _store, _pid
    if _store is None or _pid != os.getpid():
        _store = open_store(worker_database_url(), retry_seconds=WORKER_RETRY_SECONDS)
        _pid = os.getpid()
    return _store


@worker_process_init.connect(weak=False)
def _forget_parent_store(**_: object) -> None:
    global _store, _pid
    if _store is not None:
        # close=False: drop the inherited pool without closing connections the parent still uses.
        _store.engine.dispose(close=False)
    _store, _pid = None, None
