"""The database's clock as a SQL expression, so every process agrees on heartbeat times.

``db_now()`` renders ``now()`` on PostgreSQL (transaction time, with time zone) and a millisecond UTC
timestamp on SQLite (whose ``CURRENT_TIMESTAMP`` has one-second resolution). ``db_ago(seconds)`` is that
time minus a number of seconds, computed by the database too, so a staleness test needs no round trip
to read the clock first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["db_now", "db_ago", "as_utc"]


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


class db_ago(FunctionElement):  # noqa: N801 - reads like a SQL function
    """The database's current time minus ``seconds`` (a bound parameter)."""

    type = DateTime(timezone=True)
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        super().__init__(bindparam(None, float(seconds), type_=Float()))


@compiles(db_ago)
def _ago_default(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    raise NotImplementedError(f"db_ago on {compiler.dialect.name}")


@compiles(db_ago, "postgresql")
def _ago_postgresql(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"now() - make_interval(secs => {compiler.process(element.clauses, **kw)})"


@compiles(db_ago, "sqlite")
def _ago_sqlite(element, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    # The same text format as db_now(), so stored heartbeats compare as strings.
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({seconds}) || ' seconds')"


def as_utc(value: datetime | None) -> datetime | None:
    """Return ``value`` as an aware UTC datetime (SQLite gives naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
