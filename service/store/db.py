"""Database URLs, engines and schema upgrades.

The URL comes from ``--db``, else ``CAVIAR_DATABASE_URL``, else ``sqlite:///./caviar.db``. SQLite runs in
WAL mode with a busy timeout so several local processes can write; PostgreSQL goes through psycopg 3.
Every error message that could carry a URL has its password masked.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError

from core.errors import BadInput
from service.errors import CaviarError, check_url_password, describe, mask_url

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "HEAD_REVISION",
    "StoreError",
    "SchemaError",
    "MissingDatabase",
    "require_sqlite_file",
    "database_url",
    "normalize_url",
    "make_engine",
    "schema_revisions",
    "upgrade",
    "ensure_schema",
]

#: Where a study goes when no database is named: a SQLite file in the current directory.
DEFAULT_URL = "sqlite:///./caviar.db"
#: Environment variable naming the database.
ENV_VAR = "CAVIAR_DATABASE_URL"
#: The newest migration in ``migrations/versions`` (a test checks it against Alembic's head). Knowing it
#: here lets a process check an up-to-date database with one query, without loading Alembic.
HEAD_REVISION = "0006"
#: Milliseconds a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_MS = 30_000


class StoreError(CaviarError):
    """The database cannot be used (unreachable, unwritable, wrong schema). The message is one line."""


class SchemaError(StoreError):
    """The database's schema does not match this version of caviar."""


class MissingDatabase(BadInput):
    """A read found no SQLite file where the URL points (nothing ran there yet); none was created."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            "--db", f"sqlite:///{path}",
            "expected an existing caviar database (nothing has run here yet: `caviar run FILE` creates one)",
        )


def require_sqlite_file(url: str) -> None:
    """For a read: fail when ``url`` names a SQLite file that does not exist, instead of creating it.

    Raises:
        MissingDatabase: no such file.
    """
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():  # a wrong path rather than a folder where nothing ran yet
            raise StoreError(f"cannot open database {path}: directory {parent} does not exist")
        raise MissingDatabase(path)


def database_url(cli_value: str | None = None) -> str:
    """The database URL to use: ``--db`` > ``CAVIAR_DATABASE_URL`` > ``sqlite:///./caviar.db``.

    The result is normalised by :func:`normalize_url`.
    """
    raw = cli_value or os.environ.get(ENV_VAR) or DEFAULT_URL
    return normalize_url(raw)


def normalize_url(url: str) -> str:
    """Rewrite ``postgres://`` and ``postgresql://`` to psycopg 3's ``postgresql+psycopg://``.

    Raises:
        BadInput: the text is not a database URL caviar supports (SQLite or PostgreSQL).
    """
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    check_url_password("database URL", url)
    try:
        parsed = make_url(url)
        port = parsed.port
    except ValueError:  # SQLAlchemy parses the port lazily
        raise BadInput("database URL", mask_url(url), "expected a port number from 1 to 65535") from None
    except ArgumentError:
        raise BadInput(
            "database URL", mask_url(url), "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadInput(
            "database URL", mask_url(url), "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB"
        )
    if port is not None and not 1 <= port <= 65535:
        raise BadInput("database URL", mask_url(url), "expected a port number from 1 to 65535")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise BadInput("database URL", mask_url(url), "expected the psycopg 3 driver: postgresql+psycopg://")
    return url


def _sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _check_sqlite_path(url: str) -> None:
    """Fail with one line when a SQLite file cannot be created or written."""
    path = _sqlite_path(url)
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StoreError(f"cannot open database {path}: directory {parent} does not exist")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(f"cannot open database {path}: the file is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create database {path}: directory {parent} is not writable")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``: SQLite in WAL mode with a busy timeout, or PostgreSQL via psycopg 3.

    Raises:
        StoreError: a SQLite path that cannot be written.
    """
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        _check_sqlite_path(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # Python's sqlite3 opens transactions lazily; let SQLAlchemy's BEGIN do it (see SQLAlchemy's
            # "Serializable isolation / Savepoints / Transactional DDL" notes for pysqlite).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the busy timeout instead
            # of one failing with "database is locked" when it upgrades a read lock mid-transaction.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, connect_args={"connect_timeout": 10, "application_name": "caviar"})
    event.listen(engine, "checkout", _checkout_postgresql)
    return engine


def _checkout_postgresql(dbapi_conn, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
    """Hand out only an idle, live connection; anything else is discarded and replaced.

    A call interrupted mid-statement (a signal, an exception raised inside the driver's wait) can leave
    a pooled connection with a query still in flight or a transaction open. SQLAlchemy's own pre-ping
    would then fail with "can't change 'autocommit' now" instead of replacing it, so this checkout
    check comes first: it tests the driver's transaction status, then pings the server.
    """
    import psycopg
    from psycopg import pq

    if dbapi_conn.closed or dbapi_conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise DisconnectionError("connection left busy by an interrupted call")
    try:
        dbapi_conn.execute("SELECT 1")
        dbapi_conn.rollback()
    except psycopg.Error as exc:
        raise DisconnectionError(_reason(exc)) from exc


# --- schema ----------------------------------------------------------------------------------------------


def _alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    import migrations

    cfg = Config()
    # Resolved from the installed package, so `caviar db upgrade` works from any directory.
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """Return (the database's schema revision or None if it has none, the code's head revision).

    Raises:
        SchemaError: the database's revision is unknown to this code (a newer caviar made it).
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(str(engine.url)))
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:
            raise SchemaError(
                f"the database schema (revision {current}) is newer than this caviar (revision {head}); "
                "upgrade caviar to use this database"
            ) from None
    return current, head


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the database schema to ``revision``; return (revision before, revision after).

    On PostgreSQL an advisory lock serialises concurrent upgrades from several processes.
    """
    from alembic import command

    before, _head = schema_revisions(engine)
    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7305001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    after, _ = schema_revisions(engine)
    return before, after or ""


_checked: set[str] = set()
_checked_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Make sure the schema is current before first use in this process.

    SQLite databases are upgraded on first use. A PostgreSQL database is upgraded when it holds no caviar
    tables yet; one with an older schema must be upgraded explicitly with ``caviar db upgrade``.

    Raises:
        SchemaError: the schema is newer than the code, or an existing PostgreSQL schema is behind.
        StoreError: the database cannot be reached.
    """
    key = engine.url.render_as_string(hide_password=False)
    with _checked_lock:
        if key in _checked:
            return
    try:
        if _quick_revision(engine) == HEAD_REVISION:
            with _checked_lock:
                _checked.add(key)
            return
        current, head = schema_revisions(engine)
        if current != head:
            fresh = current is None and not inspect(engine).has_table("studies")
            if engine.dialect.name == "sqlite" or fresh:
                upgrade(engine)
            else:
                raise SchemaError(
                    f"the database schema is at revision {current}, this caviar needs {head}: "
                    f"run `caviar db upgrade --db {mask_url(key)}`"
                )
    except StoreError:
        raise
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot use database {mask_url(key)}: {_reason(exc)}"
        ) from None
    with _checked_lock:
        _checked.add(key)


def _quick_revision(engine: Engine) -> str | None:
    """The database's revision read directly (None when there is no version table yet)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message, passwords masked."""
    orig = getattr(exc, "orig", None) or exc
    text_ = str(orig).strip().splitlines()
    return mask_url(text_[0]) if text_ else describe(exc)
