"""One recovery pass, the same for every way of running trials: queued → stale → advance.

A :class:`Runner` is where trials run: the local process pool of ``caviar run``, or the broker's
workers (:mod:`workers.reaper`). Each knows how to send a trial to its processes and which queued
trials no process will receive unless they are sent again (not in flight locally; without a message in
the broker). :func:`recover` then:

1. sends those queued trials again;
2. re-queues (and sends) running trials whose lease is stale, or fails them at the attempt cap;
3. advances studies whose latest round is over, and sends the trials of the round it creates.

Every step is a conditional write, so any number of passes may run at once in any processes; a trial
sent twice runs once (the claim decides).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.orchestrate import advance_study
from service.settings import Settings
from service.store import Store, lease, studies

__all__ = ["Runner", "RecoveryReport", "recover"]

log = logging.getLogger("caviar.recovery")


class Runner(Protocol):
    """Where trials run."""

    def dispatch(self, trial_ids: Sequence[str]) -> None:
        """Send each trial to a process that will run it."""

    def undelivered(self, store: Store, study_id: str | None) -> list[str]:
        """Queued trials (of ``study_id``, or of every live study) that no process will receive unless
        sent again."""


@dataclass
class RecoveryReport:
    """What one pass did (trial ids)."""

    resent: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)

    @property
    def dispatched(self) -> list[str]:
        """Every trial this pass sent."""
        return [*self.resent, *self.requeued, *self.advanced]

    def __bool__(self) -> bool:
        return bool(self.resent or self.requeued or self.failed or self.advanced)


def recover(
    store: Store, runner: Runner, settings: Settings, *, study_id: str | None = None
) -> RecoveryReport:
    """One pass (see the module docstring) over one study, or over every live study.

    Args:
        store: the study store.
        runner: where to send trials.
        settings: ``stale_after`` and ``max_attempts``.
        study_id: limit the pass to this study (the local pool recovers only its own).
    """
    report = RecoveryReport()
    report.resent = runner.undelivered(store, study_id)
    if report.resent:
        runner.dispatch(report.resent)
    report.requeued, report.failed = lease.reap_stale(
        store, settings.stale_after, max_attempts=settings.max_attempts, study_id=study_id
    )
    for trial_id in report.requeued:
        log.warning("trial %s: no heartbeat for %g s, re-queued", trial_id, settings.stale_after)
    for trial_id in report.failed:
        log.warning("trial %s: no heartbeat for %g s, failed at the cap", trial_id, settings.stale_after)
    if report.requeued:
        runner.dispatch(report.requeued)
    due = studies.idle_studies(store) if study_id is None else [study_id]
    for sid in due:
        new_ids = advance_study(store, sid)
        if new_ids:
            runner.dispatch(new_ids)
            report.advanced.extend(new_ids)
    return report
