"""The broker as the service sees it: an interface, with its implementation plugged in.

``caviar submit``, ``caviar run --broker`` and ``caviar status --broker`` need a message broker, but the
service never imports one: an installed package provides a :class:`Broker` through the entry-point
group ``caviar.brokers`` (caviar's own Redis/Celery implementation is ``workers.client:RedisBroker``),
as pytest and Celery load their plugins. The store is the only thing both sides share.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from service.errors import CaviarError
from service.store import Store

__all__ = ["Broker", "ENTRY_POINTS", "broker"]

#: The entry-point group that provides :class:`Broker` implementations.
ENTRY_POINTS = "caviar.brokers"


class Broker(Protocol):
    """What the CLI asks of a broker. Every method takes the broker's URL (None: its default)."""

    def check(self, url: str | None) -> None:
        """Validate the broker's settings and reach it, before anything is written anywhere.

        Raises:
            BadInput: a setting is not allowed (the URL is masked in the message).
            BrokerUnavailable: the broker cannot be reached.
        """

    def submit(self, store: Store, spec: Any, *, text: str | None, url: str | None) -> tuple[str, list[str]]:
        """Record the study and its round 0 in ``store`` and send its trials; return (study id, trial
        ids). The broker is checked first, so an unreachable broker writes nothing.

        Raises:
            BrokerUnavailable: the broker cannot be reached.
        """

    def send(self, store: Store, trial_ids: list[str], *, url: str | None, queue: str | None) -> None:
        """Send already recorded trials to the workers (a panda session's trial), on ``queue`` (None: the
        broker's default queue).

        Raises:
            BrokerUnavailable: the broker cannot be reached.
        """

    def queue_status(self, store: Store, *, url: str | None, study_id: str | None = None) -> dict[str, Any]:
        """A JSON-safe view of the queue (depth, running per worker, stale trials); a broker that cannot
        be reached is reported in the result's ``error``, not raised."""


def broker() -> Broker:
    """The installed broker implementation.

    Raises:
        CaviarError: none is installed.
    """
    found = sorted(entry_points(group=ENTRY_POINTS), key=lambda ep: ep.name)
    if not found:
        raise CaviarError(f"no broker is installed (entry-point group {ENTRY_POINTS}): reinstall caviar")
    return found[0].load()()
