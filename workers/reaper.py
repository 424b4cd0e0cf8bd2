"""The reaper: recovery that does not depend on the broker's own redelivery.

Run periodically inside every worker (a thread of the worker's main process, started when the worker is
ready) and once at worker start. One pass:

1. RUNNING trials whose heartbeat is older than ``stale_after`` (by the database's clock) lost their
   process: below the attempt cap they go back to QUEUED and are re-sent; at the cap they become
   ``failed``, so a trial that kills its process every time cannot loop forever.
2. QUEUED trials that have no message in the broker (lost with a Redis restart without persistence)
   are re-sent.
3. Studies with nothing left queued or running are advanced (the worker that finished the last trial
   may have died before it could), and the trials of the next round are sent.

Every change is a conditional UPDATE, so reapers in several workers may run at once; a message sent
twice is harmless (the claim lets one delivery run the trial).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from service.errors import describe
from service.store import Store
from service.store.clock import db_now
from service.store.models import FINISHED, Study, Trial
from workers.broker import message_ids, redis_client
from workers.dispatch import dispatch
from workers.settings import WorkerSettings

__all__ = ["ReapReport", "reap_once", "stale_trials", "Reaper"]

log = logging.getLogger("caviar.reaper")

#: Seconds a QUEUED trial must exist before a missing broker message counts as lost (its sender may
#: still be between committing the row and sending the message).
LOST_MESSAGE_GRACE = 5.0


@dataclass
class ReapReport:
    """What one reaper pass did (trial ids)."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.resent or self.advanced)


def _stale_condition(threshold):  # type: ignore[no-untyped-def]
    return and_(
        Trial.status == "running",
        or_(
            Trial.heartbeat_at < threshold,
            and_(Trial.heartbeat_at.is_(None), Trial.started_at < threshold),
        ),
    )


def stale_trials(store: Store, stale_after: float) -> list[tuple[str, str, int, str | None]]:
    """RUNNING trials whose last heartbeat is older than ``stale_after`` seconds.

    Returns:
        (trial id, study id, attempts, worker) per stale trial.
    """
    threshold = store.now() - timedelta(seconds=stale_after)
    rows = store.run(
        lambda s: s.execute(
            select(Trial.id, Trial.study_id, Trial.attempts, Trial.worker).where(_stale_condition(threshold))
        ).all()
    )
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]


def _requeue_or_fail(store: Store, stale_after: float, max_attempts: int, report: ReapReport) -> set[str]:
    threshold = store.now() - timedelta(seconds=stale_after)
    touched: set[str] = set()
    for trial_id, study_id, attempts, worker in stale_trials(store, stale_after):
        stale = and_(Trial.id == trial_id, _stale_condition(threshold))
        if attempts >= max_attempts:
            error = (
                f"abandoned {attempts} times (last on {worker}): its process died or lost the database "
                f"each time; attempt cap {max_attempts} reached"
            )
            stmt = update(Trial).where(stale).values(status="failed", error=error, finished_at=db_now())
            target = report.failed
        else:
            stmt = update(Trial).where(stale).values(status="queued", worker=None)
            target = report.requeued

        def _apply(s: Session, stmt=stmt) -> int:  # type: ignore[no-untyped-def]
            return s.execute(stmt).rowcount or 0

        if store.run(_apply):
            target.append(trial_id)
            touched.add(study_id)
            log.warning(
                "trial %s: heartbeat older than %g s (worker %s, attempt %d): %s",
                trial_id, stale_after, worker, attempts,
                "failed at the attempt cap" if target is report.failed else "re-queued",
            )
    return touched


def _lost_messages(store: Store, app: Celery, settings: WorkerSettings) -> list[str]:
    threshold = store.now() - timedelta(seconds=LOST_MESSAGE_GRACE)
    queued = store.run(
        lambda s: s.execute(
            select(Trial.id).where(Trial.status == "queued", Trial.created_at < threshold)
        ).scalars().all()
    )
    if not queued:
        return []
    client = redis_client(settings.broker_url)
    try:
        present = message_ids(client, settings.queue)
    finally:
        client.close()
    return [t for t in queued if t not in present]


def _idle_studies(store: Store) -> list[str]:
    def query(s: Session) -> list[str]:
        unfinished = (
            select(Trial.id).where(Trial.study_id == Study.id, Trial.status.not_in(FINISHED)).exists()
        )
        return list(
            s.execute(select(Study.id).where(Study.state.in_(("queued", "running")), ~unfinished)).scalars()
        )

    return store.run(query)


def reap_once(store: Store, app: Celery, settings: WorkerSettings, *, max_attempts: int) -> ReapReport:
    """One reaper pass (see the module docstring); sends every message it decides on.

    Args:
        store: the study store.
        app: Celery app used to send messages.
        settings: broker URL, queue and ``stale_after``.
        max_attempts: the attempt cap; a stale trial with this many attempts becomes ``failed``.
    """
    from service.orchestrate import advance_study

    report = ReapReport()
    touched = _requeue_or_fail(store, settings.stale_after, max_attempts, report)
    if report.requeued:
        dispatch(report.requeued, app=app, queue=settings.queue)
    lost = _lost_messages(store, app, settings)
    lost = [t for t in lost if t not in set(report.requeued)]
    if lost:
        log.warning("re-sending %d queued trial(s) missing from the broker: %s", len(lost), ", ".join(lost))
        dispatch(lost, app=app, queue=settings.queue)
        report.resent.extend(lost)
    for study_id in sorted(touched | set(_idle_studies(store))):
        new_ids = advance_study(store, study_id)
        if new_ids:
            dispatch(new_ids, app=app, queue=settings.queue)
            report.advanced.extend(new_ids)
    return report


class Reaper(threading.Thread):
    """Runs :func:`reap_once` every ``settings.reap_interval`` seconds until :meth:`stop`.

    Errors (database or broker unreachable) are logged, passwords masked, and the next pass tries again.
    """

    def __init__(self, app: Celery, settings: WorkerSettings, store_factory, max_attempts: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name="caviar-reaper", daemon=True)
        self.app = app
        self.settings = settings
        self.store_factory = store_factory
        self.max_attempts = max_attempts
        self._stop_event = threading.Event()

    def run(self) -> None:
        store: Store | None = None
        while True:
            try:
                store = store or self.store_factory()
                report = reap_once(store, self.app, self.settings, max_attempts=self.max_attempts)
                if report:
                    log.info(
                        "reaper: %d re-queued, %d failed at the cap, %d re-sent, %d new-round trial(s) sent",
                        len(report.requeued), len(report.failed), len(report.resent), len(report.advanced),
                    )
            except Exception as exc:  # keep reaping after a transient failure
                log.warning("reaper pass failed: %s", describe(exc))
            if self._stop_event.wait(self.settings.reap_interval):
                break
        if store is not None:
            store.dispose()

    def stop(self) -> None:
        """Ask the thread to finish after the current pass."""
        self._stop_event.set()
