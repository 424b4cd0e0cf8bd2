"""``caviar db upgrade`` and ``caviar db current``: the store's schema."""

from __future__ import annotations

import sys

import typer

from service.cli import app, err
from service.commands._options import DbOption

db_app = typer.Typer(help="The study store's database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade(db: DbOption = None) -> None:
    """Upgrade the database schema to this caviar's version (SQLite is upgraded on first use anyway).

    Example:
        caviar db upgrade --db postgresql://caviar:secret@db.example.org/caviar
    """
    from service.store import db as dbmod
    from service.store import open_store

    store = open_store(db, upgrade=False)
    try:
        try:
            before, after = dbmod.upgrade(store.engine)
        except dbmod.StoreError:
            raise
        except Exception as exc:
            raise dbmod.StoreError(f"cannot upgrade {store.safe_url}: {dbmod._reason(exc)}") from None
        if before == after:
            err.print(f"{store.safe_url}: schema already at revision {after}", markup=False)
        else:
            err.print(f"{store.safe_url}: schema upgraded from {before or 'empty'} to {after}", markup=False)
    finally:
        store.dispose()


@db_app.command("current")
def current(db: DbOption = None) -> None:
    """Print the database's schema revision and this caviar's.

    Example:
        caviar db current
    """
    from service.store import db as dbmod
    from service.store import open_store

    store = open_store(db, upgrade=False, create=False)
    try:
        try:
            revision, head = dbmod.schema_revisions(store.engine)
        except dbmod.StoreError:
            raise
        except Exception as exc:
            raise dbmod.StoreError(f"cannot read {store.safe_url}: {dbmod._reason(exc)}") from None
        sys.stdout.write(f"database {revision or 'empty'}, caviar {head}\n")
    finally:
        store.dispose()
