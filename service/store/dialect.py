"""What differs between SQLite and PostgreSQL when writing, and values as the database keeps them."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

__all__ = ["insert_for", "finite", "NO_SYNC"]

#: For the trial path's ORM updates: each runs in a fresh session holding no objects, so SQLAlchemy's
#: default of evaluating the criteria against the identity map is pure overhead (a third of a millisecond).
NO_SYNC = {"synchronize_session": False}


def insert_for(session: Session):  # type: ignore[no-untyped-def]
    """The dialect's ``insert`` construct (both offer ``on_conflict_do_nothing``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def finite(value: Any) -> float | None:
    """A float for the database, or None for missing, NaN and infinite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
