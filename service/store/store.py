"""The :class:`Store` handle: an engine, transactions, error translation and retries.

Open one with :func:`open_store`. Each process opens its own (engines are not shared across
``fork``). Connection-level failures become :class:`StoreUnavailable` with the password masked;
writes made through :meth:`Store.run` are retried for ``retry_seconds`` so that a worker rides out
a database restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from service.errors import mask_url
from service.store.clock import as_utc, db_now
from service.store.db import (
    StoreError,
    _reason,
    database_url,
    ensure_schema,
    make_engine,
    require_sqlite_file,
)

__all__ = ["Store", "StoreUnavailable", "open_store"]

T = TypeVar("T")


class StoreUnavailable(StoreError):
    """The database could not be reached or was busy; the operation may succeed if retried."""


@dataclass
class Store:
    """A connection to caviar's study store.

    Attributes:
        url: the normalised database URL (may hold a password: print :attr:`safe_url` instead).
        engine: the SQLAlchemy engine.
        retry_seconds: how long :meth:`run` keeps retrying an operation that failed because the
            database was unreachable (0: fail at once, as the CLI does).
    """

    url: str
    engine: Engine
    retry_seconds: float = 0.0
    _backoff: tuple[float, ...] = field(default=(0.1, 0.25, 0.5, 1.0, 2.0), repr=False)

    @property
    def safe_url(self) -> str:
        """The URL with its password masked."""
        return mask_url(self.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction, committed on success; connection errors become
        :class:`StoreUnavailable`."""
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"database {self.safe_url}: {_reason(exc)}") from None
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"database {self.safe_url}: {_reason(exc)}") from None
            raise

    def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a transaction, retrying on :class:`StoreUnavailable` for
        :attr:`retry_seconds`. ``fn`` must be safe to run again (every caviar write is)."""
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                with self.session() as s:
                    return fn(s)
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(self._backoff[min(attempt, len(self._backoff) - 1)])
                attempt += 1

    def now(self) -> datetime:
        """The database's clock, as an aware UTC datetime."""
        value = self.run(lambda s: s.execute(select(db_now())).scalar_one())
        out = as_utc(value)
        assert out is not None
        return out

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_store(
    url: str | None = None, *, retry_seconds: float = 0.0, upgrade: bool = True, create: bool = True
) -> Store:
    """Open the store at ``url`` (default: :func:`service.store.db.database_url`).

    Args:
        url: a database URL; None resolves ``CAVIAR_DATABASE_URL`` or the SQLite default.
        retry_seconds: see :attr:`Store.retry_seconds` (workers use a minute or two).
        upgrade: check the schema (and upgrade SQLite, or an empty PostgreSQL database) first.
        create: create a SQLite file that does not exist yet (False for reads: nothing is written).

    Raises:
        StoreError: the database cannot be reached or written, or its schema does not fit.
        MissingDatabase: ``create`` is False and the SQLite file does not exist.
    """
    resolved = database_url(url)
    if not create:
        require_sqlite_file(resolved)
    engine = make_engine(resolved)
    store = Store(resolved, engine, retry_seconds=retry_seconds)
    if upgrade:
        deadline = time.monotonic() + retry_seconds
        while True:
            try:
                ensure_schema(engine)
                break
            except StoreError as exc:
                if type(exc) is not StoreError or time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
            except SQLAlchemyError as exc:
                raise StoreError(f"database {store.safe_url}: {_reason(exc)}") from None
    return store
