"""The client side of the broker: submit a study to the workers, and read the queue.

:class:`RedisBroker` is caviar's :class:`service.broker.Broker`, registered under the entry-point group
``caviar.brokers``: ``caviar submit``, ``caviar run --broker`` and ``caviar status --broker`` reach it
through that interface, so the service never imports this package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from service.errors import BrokerUnavailable, describe, mask_url
from service.orchestrate import submit
from service.store import Store
from service.store.fleet import running_by_worker
from service.store.lease import stale_running
from workers.broker import queue_depth, redis_client
from workers.settings import WorkerSettings

__all__ = ["RedisBroker", "QueueStatus", "submit_remote", "queue_status", "check_broker"]


def check_broker(url: str) -> None:
    """Fail with one line (password masked) when the broker cannot be reached.

    Raises:
        BrokerUnavailable: the broker did not answer a ping.
    """
    client = redis_client(url, timeout=5.0)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerUnavailable(f"{mask_url(url)} unreachable: {mask_url(reason)}") from None
    finally:
        client.close()


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
        BrokerUnavailable: the broker cannot be reached (nothing is written).
    """
    from workers.app import make_app
    from workers.dispatch import dispatch

    settings = WorkerSettings.from_env(broker)
    app = make_app(settings)
    check_broker(settings.broker_url)
    study_id, trial_ids = submit(store, spec, text=text, queue=settings.queue)
    dispatch(trial_ids, app=app, queue=settings.queue)
    return study_id, trial_ids


@dataclass
class QueueStatus:
    """What ``caviar status --broker`` shows about the distributed side.

    Attributes:
        broker: the broker URL, password masked.
        queue: queue name.
        queued_messages: messages waiting in the queue (None when the broker is unreachable).
        unacked_messages: messages delivered to workers and not acknowledged (running or prefetched).
        running_by_worker: RUNNING trials per worker.
        stale: RUNNING trials whose lease is stale (:func:`service.store.lease.stale`).
        stale_after: that limit in seconds (``CAVIAR_STALE_AFTER``).
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
        running_by_worker={w: len(ids) for w, ids in running_by_worker(store, study_id).items()},
        stale=[row["id"] for row in stale_running(store, settings.stale_after, study_id=study_id)],
        stale_after=settings.stale_after,
        error=error,
    )


class RedisBroker:
    """caviar's :class:`service.broker.Broker`: Celery over Redis."""

    def check(self, url: str | None) -> None:
        from workers.app import make_app

        settings = WorkerSettings.from_env(url)
        make_app(settings)  # refuses Celery's own overrides of the broker
        check_broker(settings.broker_url)

    def submit(self, store: Store, spec: Any, *, text: str | None, url: str | None) -> tuple[str, list[str]]:
        return submit_remote(store, spec, text=text, broker=url)

    def send(self, store: Store, trial_ids: list[str], *, url: str | None, queue: str | None) -> None:
        from workers.app import make_app
        from workers.dispatch import dispatch

        settings = WorkerSettings.from_env(url)
        app = make_app(settings)
        check_broker(settings.broker_url)
        dispatch(trial_ids, app=app, queue=queue or settings.queue)

    def queue_status(self, store: Store, *, url: str | None, study_id: str | None = None) -> dict[str, Any]:
        return queue_status(store, broker=url, study_id=study_id).to_dict()
