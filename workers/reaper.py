"""The reaper: the broker's side of recovery, which does not depend on the broker's own redelivery.

Run periodically inside every worker (a thread of the worker's main process, started when the worker is
ready). Each pass is :func:`service.recovery.recover` with the broker as the runner, over the live
studies of the queues this worker consumes (a study of the local pool is never touched): queued trials
that have no message in the broker (lost with a Redis restart without persistence) are re-sent; running
trials whose lease is stale are re-queued and re-sent, or failed at the attempt cap; studies whose latest
round is over are advanced and the new round's trials sent to the study's queue.

Every change is a conditional UPDATE, so reapers in several workers may run at once; a message sent
twice is harmless (the claim lets one delivery run the trial).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence

from celery import Celery

from service.errors import describe
from service.recovery import RecoveryReport, recover
from service.store import Store
from service.store.fleet import queued_before
from service.store.reads import queued_trial_ids
from service.store.studies import broker_studies
from workers.broker import message_ids, redis_client
from workers.dispatch import dispatch
from workers.settings import WorkerSettings

__all__ = ["ReapReport", "BrokerRunner", "reap_once", "Reaper", "LOST_MESSAGE_GRACE"]

log = logging.getLogger("caviar.reaper")

#: Seconds a QUEUED trial must exist before a missing broker message counts as lost (its sender may
#: still be between committing the row and sending the message).
LOST_MESSAGE_GRACE = 5.0

#: What one reaper pass did: ``resent`` (lost messages), ``requeued``, ``failed``, ``advanced``, ``broken``.
ReapReport = RecoveryReport


class BrokerRunner:
    """The broker's workers as a :class:`service.recovery.Runner`, for one pass.

    Args:
        app: the Celery app messages are sent with.
        settings: the broker URL.
        queues: the queues whose studies this pass recovers (a worker's ``-Q`` list).
    """

    def __init__(self, app: Celery, settings: WorkerSettings, queues: Sequence[str]) -> None:
        self.app = app
        self.settings = settings
        self.queues = list(queues)
        self._queue_of: dict[str, str] = {}
        self._present: set[str] | None = None

    def studies(self, store: Store) -> list[str]:
        self._queue_of = broker_studies(store, self.queues)
        return list(self._queue_of)

    def dispatch(self, study_id: str, trial_ids: Sequence[str]) -> None:
        dispatch(trial_ids, app=self.app, queue=self._queue_of.get(study_id, self.settings.queue))

    def undelivered(self, store: Store, study_id: str) -> list[str]:
        """Queued trials of the study, older than :data:`LOST_MESSAGE_GRACE`, with no message in the broker.

        Trial by trial, never by counts: a dead worker's stale unacknowledged entries must not hide a lost
        message. The database is read before the broker, so a trial sent in between is seen in the
        broker; a trial whose message is between the queue and the unacked hash (kombu moves it in two
        steps) may be sent twice, which is harmless. The broker is read once per pass.
        """
        queued = set(queued_trial_ids(store, study_id))
        if not queued:
            return []
        old = queued & queued_before(store, LOST_MESSAGE_GRACE, study_id=study_id)
        if not old:
            return []
        if self._present is None:
            client = redis_client(self.settings.broker_url)
            try:
                self._present = set()
                for queue in sorted(set(self._queue_of.values()) | set(self.queues)):
                    self._present |= message_ids(client, queue)
            finally:
                client.close()
        lost = sorted(old - self._present)
        if lost:
            log.warning(
                "re-sending %d queued trial(s) missing from the broker: %s", len(lost), ", ".join(lost)
            )
        return lost


def reap_once(
    store: Store,
    app: Celery,
    settings: WorkerSettings,
    *,
    max_attempts: int | None = None,
    queues: Sequence[str] | None = None,
) -> ReapReport:
    """One reaper pass (see the module docstring); sends every message it decides on.

    Args:
        store: the study store.
        app: Celery app used to send messages.
        settings: broker URL, queue, ``stale_after`` and the attempt cap.
        max_attempts: overrides ``settings.max_attempts``.
        queues: the queues whose studies to recover (default: ``settings.queue``).
    """
    if max_attempts is not None:
        settings = dataclasses.replace(settings, max_attempts=max_attempts)
    return recover(store, BrokerRunner(app, settings, queues or [settings.queue]), settings)


class Reaper(threading.Thread):
    """Runs :func:`reap_once` every ``settings.reap_interval`` seconds until :meth:`stop`.

    Errors (database or broker unreachable) are logged, passwords masked, and the next pass tries again.
    """

    def __init__(
        self,
        app: Celery,
        settings: WorkerSettings,
        store_factory: Callable[[], Store],
        queues: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name="caviar-reaper", daemon=True)
        self.app = app
        self.settings = settings
        self.store_factory = store_factory
        self.queues = list(queues or [settings.queue])
        self._stop_event = threading.Event()

    def run(self) -> None:
        store: Store | None = None
        while True:
            try:
                store = store or self.store_factory()
                report = reap_once(store, self.app, self.settings, queues=self.queues)
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
