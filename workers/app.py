"""The Celery application: configured from the environment, JSON only, results kept in our SQL store.

``celery -A workers.app`` (Flower, inspection) and ``caviar worker`` use the same module-level
:data:`app`. Delivery semantics are chosen so that a trial is never lost and never run twice to
completion: late acks, requeue when a worker process dies,
prefetch of one, a hard time limit below Redis's visibility timeout. The attempt cap that stops a
poison trial from looping forever lives in the store's claim, not in Celery.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from core.errors import BadInput
from service.errors import mask_url
from workers.settings import WorkerSettings

__all__ = ["app", "make_app", "celery_config", "MaskPasswords"]

#: Name of the one task caviar sends: run the trial whose id is the argument (and the task id).
TRIAL_TASK = "caviar.trial"


def celery_config(settings: WorkerSettings) -> dict[str, Any]:
    """The Celery configuration for ``settings``.

    Returns:
        A mapping for ``app.conf.update``.
    """
    # kombu re-queues messages left unacked longer than the visibility timeout; sweep often enough
    # that an abandoned message comes back within a fraction of that timeout (kombu's default
    # sweep runs only every ~100 s, whatever the timeout).
    restore_interval = max(1, min(60, int(settings.visibility_timeout / 5)))
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        "unacked_restore_interval": restore_interval,
        "unacked_restore_throttle": 1,
    }
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        # JSON only: pickle would let anyone who can reach the broker run code on every worker.
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "result_accept_content": ["json"],
        # Results live in the SQL store; no result backend.
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.time_limit,
        "task_default_queue": settings.queue,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A broker blip must not stop healthy trials: each holds its lease in the store, which decides
        # who records it; a copy redelivered after the blip finds it running and does nothing.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": True,
        "enable_utc": True,
    }
    if settings.broker_url.startswith("rediss://") and "ssl_cert_reqs" not in settings.broker_url:
        # TLS without an explicit choice: verify the server's certificate.
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return config


#: Celery's own variables, which silently override the app's configuration; caviar refuses them so that
#: CAVIAR_BROKER_URL / --broker is the one place the broker is named.
CELERY_OVERRIDES = (
    "CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL", "CELERY_RESULT_BACKEND",
)


def make_app(settings: WorkerSettings | None = None) -> Celery:
    """Build the Celery app for ``settings`` (default: from the environment).

    Raises:
        BadInput: one of :data:`CELERY_OVERRIDES` is set.
    """
    for var in CELERY_OVERRIDES:
        if os.environ.get(var):
            raise BadInput(
                var, mask_url(os.environ[var]), "unset it; caviar reads CAVIAR_BROKER_URL or --broker"
            )
    settings = settings or WorkerSettings.from_env()
    celery = Celery("caviar", include=["workers.tasks"])
    celery.conf.update(celery_config(settings))
    celery.conf.caviar_settings = settings
    return celery


class MaskPasswords(logging.Filter):
    """Logging filter that masks the password of every URL in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _mask_handlers(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, MaskPasswords) for f in handler.filters):
            handler.addFilter(MaskPasswords())


after_setup_logger.connect(_mask_handlers, weak=False)
after_setup_task_logger.connect(_mask_handlers, weak=False)

#: The application every worker and client process uses.
app = make_app()
