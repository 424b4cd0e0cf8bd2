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
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import describe
from service.store import Store, repo
from service.store.models import FINISHED, Study, Trial
from workers.broker import message_ids, queue_depth, redis_client
from workers.dispatch import dispatch
from workers.settings import WorkerSettings

__all__ = ["ReapReport", "reap_once", "lost_messages", "idle_studies", "Reaper"]

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


def _live_unfinished_count(store: Store) -> int:
    """Queued and running trials of studies that are still queued or running."""

    def query(s: Session) -> int:
        return int(
            s.execute(
                select(func.count())
                .select_from(Trial)
                .join(Study, Study.id == Trial.study_id)
                .where(Trial.status.in_(("queued", "running")), Study.state.in_(("queued", "running")))
            ).scalar_one()
        )

    return store.run(query)


def lost_messages(store: Store, settings: WorkerSettings) -> list[str]:
    """QUEUED trials of live studies, older than :data:`LOST_MESSAGE_GRACE`, with no message in the broker.

    A cheap check comes first: when the broker holds at least as many messages (waiting plus
    unacknowledged) as there are queued and running trials, nothing is scanned. Otherwise the database
    is read before the broker, so a trial sent in between is seen in the broker; a trial whose message
    is between the queue and the unacked hash (kombu moves it in two steps) may be sent twice, which
    is harmless.
    """
    client = redis_client(settings.broker_url)
    try:
        view = queue_depth(client, settings.queue)
        if view.queued + view.unacked >= _live_unfinished_count(store):
            return []
        queued = set(repo.queued_trial_ids(store))
        if not queued:
            return []
        threshold = store.now() - timedelta(seconds=LOST_MESSAGE_GRACE)
        old = set(
            store.run(
                lambda s: s.execute(
                    select(Trial.id).where(Trial.status == "queued", Trial.created_at < threshold)
                ).scalars().all()
            )
        )
        present = message_ids(client, settings.queue)
    finally:
        client.close()
    return sorted(t for t in queued & old if t not in present)


def idle_studies(store: Store) -> list[str]:
    """Studies still queued or running that have no trial left queued or running."""

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
    requeued, failed = repo.reap_stale(store, settings.stale_after, max_attempts=max_attempts)
    for trial_id in requeued:
        log.warning("trial %s: no heartbeat for %g s, re-queued", trial_id, settings.stale_after)
    for trial_id in failed:
        log.warning("trial %s: no heartbeat for %g s, failed at the cap", trial_id, settings.stale_after)
    report.requeued, report.failed = requeued, failed
    if requeued:
        dispatch(requeued, app=app, queue=settings.queue)
    lost = [t for t in lost_messages(store, settings) if t not in set(requeued)]
    if lost:
        log.warning("re-sending %d queued trial(s) missing from the broker: %s", len(lost), ", ".join(lost))
        dispatch(lost, app=app, queue=settings.queue)
        report.resent = lost
    for study_id in idle_studies(store):
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
