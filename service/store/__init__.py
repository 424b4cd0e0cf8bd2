"""caviar's study store: every SQL statement of the product lives in this package, one module a concept.

- :mod:`~service.store.db`: database URLs, engines, schema upgrades (Alembic in ``migrations/``).
- :mod:`~service.store.store`: the :class:`Store` handle: transactions, error translation, retries.
- :mod:`~service.store.models`: the tables; :mod:`~service.store.states`: trial and study states.
- :mod:`~service.store.studies`: create, look up, list, change state, cancel.
- :mod:`~service.store.rounds`: rounds and their results; where a study stands.
- :mod:`~service.store.lease`: the lease protocol (claim, heartbeat, finish, requeue, reap; one
  staleness rule by the database's clock).
- :mod:`~service.store.checkpoints`: a running trial's latest training state (NPZ bytes), kept one per
  trial while it runs, for a new attempt to resume from.
- :mod:`~service.store.reads`: trial lists, sorting, the best trial, counts, learning curves.
- :mod:`~service.store.fleet`: running trials per worker and what recovery compares with the broker.
- :mod:`~service.store.export`: bulk export (records, CSV streamed by the database).
- :mod:`~service.store.clock`, :mod:`~service.store.dialect`: the database's clock; SQLite/PostgreSQL
  differences.
"""

from __future__ import annotations

from service.store.db import DEFAULT_URL, SchemaError, StoreError, database_url
from service.store.states import FINAL_STUDY, FINISHED, LIVE_STUDY, LIVE_TRIAL, StudyState, TrialStatus
from service.store.store import Store, StoreUnavailable, open_store

__all__ = [
    "DEFAULT_URL",
    "FINAL_STUDY",
    "FINISHED",
    "LIVE_STUDY",
    "LIVE_TRIAL",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StudyState",
    "TrialStatus",
    "database_url",
    "open_store",
]
