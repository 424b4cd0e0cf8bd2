"""The fleet's view of the store: who runs what, and what recovery must look at.

``caviar status`` shows running trials per worker; the broker's recovery pass compares a study's old
queued trials with the messages the broker holds (:mod:`workers.reaper`).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from service.store.clock import db_ago
from service.store.models import Trial
from service.store.states import TrialStatus
from service.store.store import Store

__all__ = ["running_by_worker", "queued_before"]


def running_by_worker(store: Store, study_id: str | None = None) -> dict[str, list[str]]:
    """Running trial ids per worker name."""
    stmt = (
        select(Trial.worker, Trial.id)
        .where(Trial.status == TrialStatus.RUNNING)
        .order_by(Trial.worker, Trial.id)
    )
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    out: dict[str, list[str]] = defaultdict(list)
    for worker, tid in store.run(lambda s: s.execute(stmt).all()):
        out[worker or "?"].append(tid)
    return dict(out)


def queued_before(store: Store, seconds: float, *, study_id: str | None = None) -> set[str]:
    """Ids of queued trials (of one study, or of all) created more than ``seconds`` ago by the
    database's clock."""
    stmt = select(Trial.id).where(Trial.status == TrialStatus.QUEUED, Trial.created_at < db_ago(seconds))
    if study_id is not None:
        stmt = stmt.where(Trial.study_id == study_id)
    return set(store.run(lambda s: s.execute(stmt).scalars().all()))
