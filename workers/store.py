"""One study-store handle per worker process, never shared across ``fork``.

A pooled connection inherited from the parent would be used by two processes at once (and closed by
whichever exits first), so a forked pool child forgets the parent's handle and opens its own.
"""

from __future__ import annotations

import os

from celery.signals import worker_process_init

from service.store import Store, open_store

__all__ = ["worker_store", "STORE_RETRY_SECONDS"]

#: Seconds a worker keeps retrying a database operation while the database is unreachable (a restart).
STORE_RETRY_SECONDS = 120.0

_store: Store | None = None
_pid: int | None = None


def worker_store() -> Store:
    """This process's store (``CAVIAR_DATABASE_URL``), opened on first use with write retries."""
    global _store, _pid
    if _store is None or _pid != os.getpid():
        _store = open_store(retry_seconds=STORE_RETRY_SECONDS)
        _pid = os.getpid()
    return _store


@worker_process_init.connect(weak=False)
def _forget_parent_store(**_: object) -> None:
    global _store, _pid
    if _store is not None:
        # close=False: drop the inherited pool without closing connections the parent still uses.
        _store.engine.dispose(close=False)
    _store, _pid = None, None
