"""The reaper: the broker's side of recovery, which does not depend on the broker's own redelivery.

Run periodically inside every worker (a thread of the worker's main process, started when the worker is
ready). Each pass is :func:`service.recovery.recover` over every live study, with the broker as the
runner: queued trials that have no message in the broker (lost with a Redis restart without
persistence) are re-sent; running trials whose lease is stale are re-queued and re-sent, or failed at
the attempt cap; studies whose latest round is over are advanced and the new round's trials sent.

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
from service.store.fleet import live_unfinished_count, queued_before
from service.store.reads import queued_trial_ids
from workers.broker import message_ids, queue_depth, redis_client
from workers.dispatch import dispatch
from workers.settings import WorkerSettings

__all__ = ["ReapReport", "BrokerRunner", "reap_once", "lost_messages", "Reaper"]

log = logging.getLogger("caviar.reaper")

#: Seconds a QUEUED trial must exist before a missing broker message counts as lost (its sender may
#: still be between committing the row and sending the message).
LOST_MESSAGE_GRACE = 5.0

#: What one reaper pass did: ``resent`` (lost messages), ``requeued``, ``failed``, ``advanced``.
ReapReport = RecoveryReport


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
        if view.queued + view.unacked >= live_unfinished_count(store):
            return []
        queued = set(queued_trial_ids(store))
        if not queued:
            return []
        old = queued_before(store, LOST_MESSAGE_GRACE)
        present = message_ids(client, settings.queue)
    finally:
        client.close()
    return sorted(t for t in queued & old if t not in present)


class BrokerRunner:
    """The broker's workers as a :class:`service.recovery.Runner`."""

    def __init__(self, app: Celery, settings: WorkerSettings) -> None:
        self.app = app
        self.settings = settings

    def dispatch(self, trial_ids: Sequence[str]) -> None:
        dispatch(trial_ids, app=self.app, queue=self.settings.queue)

    def undelivered(self, store: Store, study_id: str | None) -> list[str]:
        lost = lost_messages(store, self.settings)
        if study_id is not None:
            lost = [t for t in lost if t.startswith(f"{study_id}-r")]
        if lost:
            log.warning(
                "re-sending %d queued trial(s) missing from the broker: %s", len(lost), ", ".join(lost)
            )
        return lost


def reap_once(
    store: Store, app: Celery, settings: WorkerSettings, *, max_attempts: int | None = None
) -> ReapReport:
    """One reaper pass over every live study (see the module docstring); sends every message it decides on.

    Args:
        store: the study store.
        app: Celery app used to send messages.
        settings: broker URL, queue, ``stale_after`` and the attempt cap.
        max_attempts: overrides ``settings.max_attempts``.
    """
    if max_attempts is not None:
        settings = dataclasses.replace(settings, max_attempts=max_attempts)
    return recover(store, BrokerRunner(app, settings), settings)


class Reaper(threading.Thread):
    """Runs :func:`reap_once` every ``settings.reap_interval`` seconds until :meth:`stop`.

    Errors (database or broker unreachable) are logged, passwords masked, and the next pass tries again.
    """

    def __init__(self, app: Celery, settings: WorkerSettings, store_factory: Callable[[], Store]) -> None:
        super().__init__(name="caviar-reaper", daemon=True)
        self.app = app
        self.settings = settings
        self.store_factory = store_factory
        self._stop_event = threading.Event()

    def run(self) -> None:
        store: Store | None = None
        while True:
            try:
                store = store or self.store_factory()
                report = reap_once(store, self.app, self.settings)
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
