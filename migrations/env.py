"""Alembic environment for caviar's store.

Used programmatically (see :mod:`service.store.db`): the caller passes an open connection in
``config.attributes["connection"]``; otherwise one is made from ``sqlalchemy.url``. SQLite runs in
batch mode so that column changes work through table copies.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from service.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's connection, or on a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("caviar's migrations run online only: use `caviar db upgrade`")
run_migrations_online()
