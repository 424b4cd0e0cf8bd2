"""Sending trials to the queue: one message per trial, the trial id as the task id.

Sending is idempotent in effect rather than on the wire: a trial sent twice is delivered twice, and the
store's claim lets only one delivery run it (the other sees it running or finished and does nothing).
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery

from workers.app import TRIAL_TASK

__all__ = ["dispatch"]


def dispatch(trial_ids: Iterable[str], *, app: Celery | None = None, queue: str | None = None) -> int:
    """Send one ``caviar.trial`` message per id, reusing one broker connection.

    Args:
        trial_ids: deterministic trial ids; each becomes the Celery task id.
        app: the Celery app to send with (default: :data:`workers.app.app`).
        queue: target queue (default: the app's default queue).

    Returns:
        The number of messages sent.
    """
    if app is None:
        from workers.app import app as default_app

        app = default_app
    queue = queue or app.conf.task_default_queue
    ids = list(trial_ids)
    if not ids:
        return 0
    with app.producer_or_acquire() as producer:
        for trial_id in ids:
            app.send_task(TRIAL_TASK, args=[trial_id], task_id=trial_id, queue=queue, producer=producer)
    return len(ids)
