"""The database's clock as a SQL expression, so every process agrees on heartbeat times.

``db_now()`` renders ``now()`` on PostgreSQL (transaction time, with time zone) and a millisecond UTC
timestamp on SQLite (whose ``CURRENT_TIMESTAMP`` has one-second resolution).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["db_now", "as_utc"]


class db_now(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """The current time by the database's clock."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(db_now)
def _default(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "postgresql")
def _postgresql(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return "now()"


@compiles(db_now, "sqlite")
def _sqlite(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def as_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` as an aware UTC datetime (SQLite gives naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
