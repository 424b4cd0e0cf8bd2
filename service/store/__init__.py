"""caviar's study store: SQLAlchemy models, database URLs and engines, and idempotent queries.

Open a store with :func:`open_store`; queries and writes live in :mod:`service.store.repo`.
"""

from __future__ import annotations

from service.store.db import DEFAULT_URL, SchemaError, StoreError, database_url
from service.store.store import Store, StoreUnavailable, open_store

__all__ = [
    "DEFAULT_URL",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "database_url",
    "open_store",
]
