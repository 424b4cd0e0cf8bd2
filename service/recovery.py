"""One recovery pass, the same for every way of running trials: queued → stale → advance.

A :class:`Runner` is where trials run: the local process pool of ``caviar run`` (its own study), or the
broker's workers (:mod:`workers.reaper`: the live studies of the queues they consume). Each side
recovers only its own studies. A runner knows which studies are its own, how to send a study's trials to
its processes, and which queued trials no process will receive unless they are sent again (not in flight
locally; without a message in the broker). :func:`recover` then, for each of its studies:

1. sends those queued trials again;
2. re-queues (and sends) running trials whose lease is stale, or fails them at the attempt cap;
3. advances the study if its latest round is over, and sends the trials of the round it creates.

Every step is a conditional write, so any number of passes may run at once in any processes; a trial
sent twice runs once (the claim decides). A study that cannot be advanced (its stored spec no longer
parses) is marked failed with the reason and the pass goes on with the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import BadInput
from service.errors import describe
from service.orchestrate import advance_study
from service.settings import Settings
from service.store import LIVE_STUDY, Store, StoreError, StudyState, lease, studies

__all__ = ["Runner", "RecoveryReport", "recover"]

log = logging.getLogger("caviar.recovery")


class Runner(Protocol):
    """Where trials run."""

    def studies(self, store: Store) -> list[str]:
        """The live studies this runner recovers."""

    def dispatch(self, study_id: str, trial_ids: Sequence[str]) -> None:
        """Send each of the study's trials to a process that will run it."""

    def undelivered(self, store: Store, study_id: str) -> list[str]:
        """The study's queued trials that no process will receive unless sent again."""


@dataclass
class RecoveryReport:
    """What one pass did (trial ids; study ids for ``broken``)."""

    resent: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    @property
    def dispatched(self) -> list[str]:
        """Every trial this pass sent."""
        return [*self.resent, *self.requeued, *self.advanced]

    def __bool__(self) -> bool:
        return bool(self.resent or self.requeued or self.failed or self.advanced or self.broken)


def recover(store: Store, runner: Runner, settings: Settings) -> RecoveryReport:
    """One pass (see the module docstring) over the runner's studies.

    Args:
        store: the study store.
        runner: where to send trials, and which studies are its own.
        settings: ``stale_after`` and ``max_attempts``.
    """
    report = RecoveryReport()
    for study_id in runner.studies(store):
        try:
            _recover_study(store, runner, settings, study_id, report)
        except StoreError:
            raise  # the database is down: the whole pass is, and the next one tries again
        except Exception as exc:  # one study's problem must not stop the others' recovery
            log.warning("study %s: recovery failed: %s", study_id, describe(exc))
    return report


def _recover_study(
    store: Store, runner: Runner, settings: Settings, study_id: str, report: RecoveryReport
) -> None:
    resent = runner.undelivered(store, study_id)
    if resent:
        runner.dispatch(study_id, resent)
        report.resent.extend(resent)
    requeued, failed = lease.reap_stale(
        store, settings.stale_after, max_attempts=settings.max_attempts, study_id=study_id
    )
    for trial_id in requeued:
        log.warning("trial %s: no heartbeat for %g s, re-queued", trial_id, settings.stale_after)
    for trial_id in failed:
        log.warning("trial %s: no heartbeat for %g s, failed at the cap", trial_id, settings.stale_after)
    if requeued:
        runner.dispatch(study_id, requeued)
    report.requeued.extend(requeued)
    report.failed.extend(failed)
    try:
        new_ids = advance_study(store, study_id)
    except BadInput as exc:  # its stored spec no longer parses: it can never advance
        reason = f"cannot advance: {describe(exc)}"
        log.warning("study %s: %s; marked failed", study_id, reason)
        studies.set_study_state(store, study_id, StudyState.FAILED, only_from=LIVE_STUDY, error=reason)
        report.broken.append(study_id)
        return
    if new_ids:
        runner.dispatch(study_id, new_ids)
        report.advanced.extend(new_ids)
