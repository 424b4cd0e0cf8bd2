"""The broker side of the CLI: submitting a study to the workers, following it, and queue status.

``caviar submit`` and ``caviar run FILE --broker URL`` call :func:`submit_remote`; ``run`` then calls
:func:`follow`; ``caviar status`` adds :func:`queue_status` to its output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from service.errors import describe, mask_url
from service.store import Store, repo
from service.store.models import FINISHED, Study, Trial

__all__ = [
    "BrokerUnavailable", "QueueStatus", "StudyProgress",
    "submit_remote", "follow", "queue_status", "study_progress",
]


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached; the message is one line with the password masked."""


def submit_remote(
    store: Store, spec: Any, *, text: str | None = None, broker: str | None = None
) -> tuple[str, list[str]]:
    """Record the study, queue round 0 and send its trials to the broker.

    The broker is checked before anything is written, so an unreachable broker leaves no orphan study.

    Args:
        store: the study store the workers use.
        spec: the parsed study (:class:`core.search.StudySpec`).
        text: the study file's content, kept with the study.
        broker: broker URL (default: ``CAVIAR_BROKER_URL``).

    Returns:
        (study id, ids of the trials sent).

    Raises:
        BadInput: the study file is invalid (nothing is written).
    """
    from service.orchestrate import submit
    from workers.app import make_app
    from workers.dispatch import dispatch
    from workers.settings import WorkerSettings

    settings = WorkerSettings.from_env(broker)
    app = make_app(settings)
    _check_broker(settings.broker_url)
    study_id, trial_ids = submit(store, spec, text=text)
    dispatch(trial_ids, app=app, queue=settings.queue)
    return study_id, trial_ids


def _check_broker(url: str) -> None:
    """Fail with one line (password masked) when the broker cannot be reached, before writing anything."""
    import redis

    from workers.broker import redis_client

    client = redis_client(url, timeout=5.0)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerUnavailable(f"{mask_url(url)} unreachable: {mask_url(reason)}") from None
    finally:
        client.close()


@dataclass
class StudyProgress:
    """Counts for one study at one moment."""

    state: str
    round_index: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Trials of the round that reached a final status."""
        return sum(n for status, n in self.counts.items() if status in FINISHED)

    @property
    def total(self) -> int:
        """Trials of the round."""
        return sum(self.counts.values())


def study_progress(store: Store, study_id: str) -> StudyProgress:
    """The study's state, its latest round and the trial counts by status in that round."""

    def query(s):  # type: ignore[no-untyped-def]
        state = s.execute(select(Study.state).where(Study.id == study_id)).scalar_one()
        latest = s.execute(select(func.max(Trial.round_index)).where(Trial.study_id == study_id)).scalar()
        latest = int(latest or 0)
        rows = s.execute(
            select(Trial.status, func.count())
            .where(Trial.study_id == study_id, Trial.round_index == latest)
            .group_by(Trial.status)
        ).all()
        return StudyProgress(state, latest, {r[0]: int(r[1]) for r in rows})

    return store.run(query)


def follow(
    store: Store,
    study_id: str,
    *,
    poll: float = 0.5,
    on_progress: Callable[[StudyProgress], None] | None = None,
) -> str:
    """Poll the study until it is complete, failed or cancelled; return that state.

    The study advances without this process: stopping ``follow`` (Ctrl-C) leaves it running on the workers.
    """
    last: tuple[Any, ...] | None = None
    while True:
        progress = study_progress(store, study_id)
        key = (progress.state, progress.round_index, tuple(sorted(progress.counts.items())))
        if on_progress is not None and key != last:
            on_progress(progress)
        last = key
        if progress.state in ("complete", "failed", "cancelled"):
            return progress.state
        time.sleep(poll)


@dataclass
class QueueStatus:
    """What ``caviar status`` shows about the distributed side.

    Attributes:
        broker: the broker URL, password masked.
        queue: queue name.
        queued_messages: messages waiting in the queue (None when the broker is unreachable).
        unacked_messages: messages delivered to workers and not acknowledged (running or prefetched).
        running_by_worker: RUNNING trials per worker.
        stale: RUNNING trials whose heartbeat is older than the stale limit.
        stale_after: that limit in seconds.
        error: why the broker could not be read, if it could not.
    """

    broker: str
    queue: str
    queued_messages: int | None
    unacked_messages: int | None
    running_by_worker: dict[str, int]
    stale: list[str]
    stale_after: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def queue_status(store: Store, *, broker: str | None = None, study_id: str | None = None) -> QueueStatus:
    """Queue depth, running trials per worker and stale trials; the broker's URL is shown masked.

    A broker that cannot be reached is reported in ``error`` rather than raised, so ``status`` still
    shows what the store knows.
    """
    import redis

    from workers.broker import queue_depth, redis_client
    from workers.settings import WorkerSettings

    settings = WorkerSettings.from_env(broker)
    queued: int | None = None
    unacked: int | None = None
    error: str | None = None
    client = redis_client(settings.broker_url, timeout=3.0)
    try:
        view = queue_depth(client, settings.queue)
        queued, unacked = view.queued, view.unacked
    except redis.exceptions.RedisError as exc:
        error = mask_url(describe(exc))
    finally:
        client.close()
    return QueueStatus(
        broker=mask_url(settings.broker_url),
        queue=settings.queue,
        queued_messages=queued,
        unacked_messages=unacked,
        running_by_worker={w: len(ids) for w, ids in repo.running_by_worker(store, study_id).items()},
        stale=[row["id"] for row in repo.stale_running(store, settings.stale_after, study_id=study_id)],
        stale_after=settings.stale_after,
        error=error,
    )
