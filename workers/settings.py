"""Worker settings read from the environment: the service's settings plus the broker's.

Every value has a production default, documented once as a constant; tests shorten the timeouts through
the same variables. The broker URL and the queue are resolved by :func:`service.config_file.resolve`
(flag > environment variable > config file > default), their defaults living in :mod:`service.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadInput
from service.config_file import resolve
from service.errors import check_url_password, mask_url
from service.settings import (
    DEFAULT_BROKER_URL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE,
    DEFAULT_STALE_AFTER,
    Settings,
    env_count,
    env_seconds,
)

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_QUEUE",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "DEFAULT_TIME_LIMIT",
    "DEFAULT_REAP_INTERVAL",
    "WorkerSettings",
]

# DEFAULT_BROKER_URL (used when neither --broker, CAVIAR_BROKER_URL nor the config file names a broker)
# and DEFAULT_QUEUE come from service.settings, with every other default; they stay importable from here.
#: Seconds an unacknowledged message may stay with a worker before Redis hands it to another one.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
#: Seconds a trial may run before its process is killed; below the visibility timeout so that no
#: second copy of a running trial is ever delivered by the broker.
DEFAULT_TIME_LIMIT = 3300.0
#: Seconds between two reaper passes in each worker.
DEFAULT_REAP_INTERVAL = 30.0


@dataclass(frozen=True)
class WorkerSettings(Settings):
    """Broker, queue and timing settings shared by the Celery app, the reaper and the CLI.

    Attributes:
        stale_after, max_attempts: see :class:`service.settings.Settings`.
        broker_url: Redis URL (``redis://`` or ``rediss://``, password allowed in the URL).
        queue: queue name trials are routed to.
        visibility_timeout: see :data:`DEFAULT_VISIBILITY_TIMEOUT`.
        time_limit: see :data:`DEFAULT_TIME_LIMIT`; must be below ``visibility_timeout``.
        reap_interval: see :data:`DEFAULT_REAP_INTERVAL`.
    """

    broker_url: str = DEFAULT_BROKER_URL
    queue: str = DEFAULT_QUEUE
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT
    time_limit: float = DEFAULT_TIME_LIMIT
    reap_interval: float = DEFAULT_REAP_INTERVAL

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.broker_url.startswith(("redis://", "rediss://")):
            raise BadInput("broker", mask_url(self.broker_url), "expected a redis:// or rediss:// URL")
        check_url_password("broker", self.broker_url)
        if self.time_limit >= self.visibility_timeout:
            raise BadInput(
                "CAVIAR_TASK_TIME_LIMIT", self.time_limit,
                f"expected less than the visibility timeout ({self.visibility_timeout:g} s)",
            )

    @classmethod
    def from_env(cls, broker_url: str | None = None) -> WorkerSettings:
        """Read ``CAVIAR_BROKER_URL``, ``CAVIAR_QUEUE``, ``CAVIAR_VISIBILITY_TIMEOUT``,
        ``CAVIAR_TASK_TIME_LIMIT``, ``CAVIAR_STALE_AFTER``, ``CAVIAR_REAP_INTERVAL`` and
        ``CAVIAR_MAX_ATTEMPTS``; the broker and the queue fall back on the config file
        (:mod:`service.config_file`) before their defaults.

        Args:
            broker_url: overrides ``CAVIAR_BROKER_URL`` when given (the ``--broker`` option).

        Raises:
            BadInput: a value is not allowed, or the config file is bad.
        """
        visibility = env_seconds("CAVIAR_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT)
        default_limit = min(DEFAULT_TIME_LIMIT, 0.9 * visibility)
        return cls(
            broker_url=resolve("broker", broker_url).value,
            queue=resolve("queue").value,
            visibility_timeout=visibility,
            time_limit=env_seconds("CAVIAR_TASK_TIME_LIMIT", default_limit),
            stale_after=env_seconds("CAVIAR_STALE_AFTER", DEFAULT_STALE_AFTER),
            reap_interval=env_seconds("CAVIAR_REAP_INTERVAL", DEFAULT_REAP_INTERVAL),
            max_attempts=env_count("CAVIAR_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
        )
