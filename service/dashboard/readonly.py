"""A read-only handle on the study store: every read of the dashboard goes through it.

The database refuses writes on it (SQLite ``PRAGMA query_only``, PostgreSQL
``default_transaction_read_only``), so a dashboard started without ``--allow-control`` cannot change
anything, whatever its code does. On SQLite its transactions begin ``DEFERRED``: a reader of a WAL
database takes no lock a training process would wait for (caviar's own handle begins ``IMMEDIATE``,
which a writer needs and a reader does not).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

from service.store import Store
from service.store.db import SQLITE_BUSY_MS

__all__ = ["read_only"]


def read_only(store: Store) -> Store:
    """A second handle on ``store``'s database whose connections cannot write."""
    url = store.url
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's BEGIN (below) opens each transaction
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")  # deferred: one snapshot per transaction, no write lock

    else:
        engine = create_engine(
            url, pool_pre_ping=True,
            connect_args={
                "connect_timeout": 10, "application_name": "caviar-dashboard",
                "options": "-c default_transaction_read_only=on",
            },
        )
    return Store(url, engine)
