"""Distributed execution: a thin Celery adapter around :func:`service.execute.execute_trial`.

- :mod:`workers.settings`: broker, queue and timing settings from the environment.
- :mod:`workers.app`: the Celery application (JSON only, late acks, no result backend).
- :mod:`workers.tasks`: the one task, ``caviar.trial``.
- :mod:`workers.dispatch`: sending trial ids to the queue (the trial id is the task id).
- :mod:`workers.reaper`: recovery of stale trials, lost messages and unadvanced studies.
- :mod:`workers.broker`: reading queue depth and message ids from Redis.
- :mod:`workers.store`: one store handle per worker process.
- :mod:`workers.main`: starting a worker (warm-up, reaper, prefork pool).

Nothing here imports Celery's app at package import, so ``import workers`` stays cheap.
"""

from __future__ import annotations
