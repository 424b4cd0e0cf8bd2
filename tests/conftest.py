"""Shared test configuration and fixtures.

Fixtures that start real servers live in ``pg_server.py`` (``pg_server``, ``pg_url``) and
``redis_server.py`` (``redis_server``), loaded here as plugins so every module can use them; the
SQLite/PostgreSQL matrix is :func:`any_db_url`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep test processes single-threaded for BLAS and Numba, as training processes are.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

pytest_plugins = ["pg_server", "redis_server"]

#: The store backends every store test runs on.
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend: a SQLite file, or a new database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'caviar.db'}"
    return request.getfixturevalue("pg_url")


def _backdate(store, seconds: float, trial_ids=None) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from service.store.models import Trial

    def go(s):  # type: ignore[no-untyped-def]
        for row in s.query(Trial).all():
            if trial_ids is not None and row.id not in trial_ids:
                continue
            row.created_at = row.created_at - timedelta(seconds=seconds)
            if row.heartbeat_at is not None:
                row.heartbeat_at = row.heartbeat_at - timedelta(seconds=seconds)

    store.run(go)


@pytest.fixture
def backdate():  # type: ignore[no-untyped-def]
    """``backdate(store, seconds, trial_ids=None)``: move trials' creation and heartbeat times into the
    past, as if ``seconds`` had passed with no heartbeat (instead of sleeping in staleness tests)."""
    return _backdate
