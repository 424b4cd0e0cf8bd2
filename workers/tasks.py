"""The one Celery task: run a trial through the shared execution path, then dispatch what it unlocked.

All the logic (claim with the attempt cap, training with per-epoch heartbeats, idempotent recording,
advancing the round) is in :func:`service.execute.execute_trial`, the same code the local executor of
``caviar run`` uses; this module only adapts it to Celery.
"""

from __future__ import annotations

from celery import Task

from workers.app import TRIAL_TASK, app
from workers.dispatch import dispatch
from workers.settings import WorkerSettings
from workers.store import worker_store

__all__ = ["run_trial"]


@app.task(name=TRIAL_TASK, bind=True)
def run_trial(self: Task, trial_id: str) -> None:
    """Run trial ``trial_id`` (a no-op when another delivery already ran or is running it).

    Trials of the next round that this trial's completion queued are sent to the broker before the
    message is acknowledged, so a crash in between re-delivers this message, whose re-run finds the
    trial finished and the round already advanced (the reaper re-sends lost messages in any case).
    """
    from service.execute import execute_trial
    from service.orchestrate import study_of
    from service.store.studies import study_queue

    settings: WorkerSettings = self.app.conf.caviar_settings
    store = worker_store()
    # A redelivered message (its worker died) may take over a trial whose heartbeat went stale at once,
    # without waiting for a reaper pass.
    new_ids = execute_trial(
        store, trial_id, worker=self.request.hostname or "celery",
        max_attempts=settings.max_attempts, steal_after=settings.stale_after,
        budget=settings.time_limit / 2,  # a panda session is handed on in slices, within the time limit
    )
    if new_ids:
        # The study's own queue, whatever queue this worker was started with.
        dispatch(new_ids, app=self.app, queue=study_queue(store, study_of(trial_id)) or settings.queue)
