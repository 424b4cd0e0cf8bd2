"""The runner: the one process that trains a panda session, under its trial's lease.

It claims the session's trial (as a sweep's worker claims a trial), resumes from the latest checkpoint,
and trains phase by phase (:func:`core.panda.advance`). Every epoch is written with its checkpoint and the
heartbeat in one transaction (:func:`service.store.panda.tick`), which also says whether a request is due;
at that boundary the runner applies the due requests in order: a ``set`` changes the timeline, a
``rollback`` returns to an earlier state (recomputed from the nearest earlier checkpoint when that epoch's
was let go), ``pause`` and ``stop`` end the run. A runner killed at any point leaves the session at its
last written epoch; the next runner continues from there, bit for bit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.errors import BadInput
from core.nn import Checkpoint
from core.panda import LogEntry, Timeline, advance, build_timeline, kept_epochs
from core.panda.timeline import Change
from service.errors import describe
from service.settings import DEFAULT_MAX_ATTEMPTS
from service.store import Store, StoreError, lease
from service.store import panda as db
from service.store.models import PandaRequest
from service.store.states import PandaAction, PandaState, TrialStatus

__all__ = ["run_session", "session_data", "timeline_of", "state_at", "final_metrics", "LeaseLost"]

log = logging.getLogger("caviar.panda")


class LeaseLost(Exception):
    """Another process took the session over (this one's heartbeat went stale)."""


def session_data(source: dict[str, Any], dtype: str) -> Any:
    """The session's dataset (loaded as a study's trials load theirs)."""
    from core.data import load_dataset
    from service.settings import data_root

    return load_dataset(
        source.get("dataset"), path=source.get("data"), target=source.get("target"),
        seed=int(source.get("split_seed", 0)), val_fraction=float(source.get("val_fraction", 0.2)),
        dtype=dtype, root=data_root(),
    )


def log_entries(requests: list[PandaRequest]) -> list[LogEntry]:
    """The applied requests that shape the timeline (sets and rollbacks), in the order applied."""
    out = []
    for r in requests:
        if r.action == PandaAction.SET:
            out.append(LogEntry("set", int(r.applied_epoch or 0), dict(r.values)))
        elif r.action == PandaAction.ROLLBACK:
            out.append(LogEntry("rollback", int(r.applied_epoch or 0), dict(r.values), to_epoch=r.to_epoch))
    return out


def timeline_of(store: Store, view: db.SessionView) -> Timeline:
    """The session's timeline as its log stands."""
    inherited = [Change.from_dict(c) for c in view.session.inherited]
    return build_timeline(view.session.initial, inherited, log_entries(db.applied(store, view.id)))


def state_at(
    store: Store, trial_id: str, timeline: Timeline, data: Any, epoch: int,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
) -> Checkpoint | None:
    """The state after ``epoch`` epochs of ``timeline``: its stored checkpoint, or recomputed exactly from
    the nearest earlier one (or from scratch)."""
    if epoch == 0:
        return None
    held = [e for e in db.checkpoint_epochs(store, trial_id) if e <= epoch]
    start = None
    if held:
        start = Checkpoint.from_bytes(db.checkpoint_bytes(store, trial_id, held[-1]) or b"")
        if start.epoch == epoch:
            return start
    outcome = advance(timeline, data, start, epoch, on_checkpoint=on_checkpoint)
    if outcome.status != "complete":
        raise BadInput("--to-epoch", epoch, f"an epoch the session reached (recomputing it {outcome.status})")
    return outcome.state


def _metrics(result: Any, epoch: int, seconds: float) -> dict[str, Any]:
    return {
        "val_loss": result.val_loss, "val_accuracy": result.val_accuracy, "train_loss": result.train_loss,
        "epochs_run": epoch, "seconds": seconds, "samples_per_second": result.samples_per_second,
    }


def run_session(
    store: Store,
    session_id: str,
    *,
    worker: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    steal_after: float | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    budget: float | None = None,
) -> PandaState | None:
    """Run a session until it pauses, completes, diverges, stops or fails (or its time budget ends).

    Args:
        worker: the name recorded on the trial (``panda:HOST:PID`` locally, the Celery hostname on a worker).
        steal_after: also take over a runner whose heartbeat is this many seconds old (it died).
        on_epoch: called with every epoch's entry once it is stored (a progress bar).
        budget: seconds this runner may train (a Celery task's time limit): at the first epoch boundary
            past it the session goes back to ``queued`` at its checkpoint, for the next runner to go on.

    Returns:
        The session's state when this runner stopped (``running`` when the budget ended: send it again),
        or None if it did not get the lease (another runner holds it, or it is not waiting to run).

    Raises:
        KeyboardInterrupt: after pausing the session at its last stored epoch.
    """
    view = db.session_view(store, session_id)
    if view is None:
        raise BadInput("session", session_id, "a panda session id (see caviar panda list)")
    claim = lease.claim_trial(
        store, view.trial.id, worker, max_attempts=max_attempts, steal_after=steal_after
    )
    if claim is None:
        return None
    trial_id, attempt = claim.trial_id, claim.attempt
    seconds = [claim.seconds_before]
    last: list[dict[str, Any]] = []
    deadline = time.monotonic() + budget if budget is not None else None

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline
    try:
        timeline = timeline_of(store, view)
        data = session_data(view.session.source, timeline.initial["dtype"])
        epoch = claim.resume_epoch
        state = state_at(store, trial_id, timeline, data, epoch)
        protected = db.protected_epochs(store, session_id)

        def keep(held: list[int], current: int) -> set[int]:
            return kept_epochs(held, current, protected)

        pending_checkpoint: list[Checkpoint] = []

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            pending_checkpoint[:] = [checkpoint]

        def step(entry: dict[str, Any]) -> bool:
            """Store the epoch with its checkpoint; False (stop at this boundary) when a request is due."""
            checkpoint = pending_checkpoint[0]
            held, is_due = db.tick(store, session_id, trial_id, attempt, entry, checkpoint.to_bytes(), keep)
            if not held:
                raise LeaseLost(trial_id)
            seconds[0] += float(entry.get("seconds") or 0.0)
            last[:] = [entry]
            if on_epoch is not None:
                on_epoch(entry)
            return not (is_due or out_of_time())

        while True:
            timeline, epoch, state, end = _apply_due(store, view, attempt, timeline, data, epoch, state)
            protected = db.protected_epochs(store, session_id)  # a rollback or a fork may have added one
            if end is not None:
                status = TrialStatus.PAUSED if end == PandaAction.PAUSE else TrialStatus.CANCELLED
                _finish(store, session_id, trial_id, attempt, status, None)
                return PandaState.of(status)
            total = timeline.epochs_at(epoch)
            if epoch < total and out_of_time():
                if not db.release(store, trial_id, attempt):
                    raise LeaseLost(trial_id)
                return PandaState.RUNNING
            if epoch >= total:
                result = final_metrics(timeline, data, state, epoch)
                _finish(store, session_id, trial_id, attempt, TrialStatus.COMPLETE,
                        _metrics(result, epoch, seconds[0]))
                return PandaState.COMPLETE
            until = _next_stop(store, session_id, epoch, total)
            outcome = advance(timeline, data, state, until, on_epoch=step, on_checkpoint=on_checkpoint)
            if outcome.status == "diverged":
                entry = outcome.history[-1]
                _finish(store, session_id, trial_id, attempt, TrialStatus.DIVERGED,
                        {"epochs_run": outcome.epoch, "seconds": seconds[0]}, last_epoch=entry)
                if on_epoch is not None:
                    on_epoch(entry)
                return PandaState.DIVERGED
            state, epoch = outcome.state, outcome.epoch
    except KeyboardInterrupt:
        _finish(store, session_id, trial_id, attempt, TrialStatus.PAUSED, None)
        raise
    except LeaseLost:
        log.warning("session %s: another runner took over", session_id)
        return None
    except StoreError:
        raise
    except Exception as exc:  # the session failed: say why, keep its checkpoints for a rollback or fork
        _finish(store, session_id, trial_id, attempt, TrialStatus.FAILED, None, error=describe(exc))
        return PandaState.FAILED


def final_metrics(timeline: Timeline, data: Any, state: Checkpoint | None, epoch: int) -> Any:
    """The trained model's final metrics (zero epochs from the last state: population statistics too)."""
    from core.nn import train

    config, schedule_from = timeline.state_at(epoch)
    return train({**config, "epochs": epoch}, data, start=state, schedule_from=schedule_from)


def _next_stop(store: Store, session_id: str, epoch: int, total: int) -> int:
    """The next epoch a pending request waits for (``--at-epoch``), or the end."""
    later = [
        r.at_epoch for r in db.pending(store, session_id) if r.at_epoch is not None and r.at_epoch > epoch
    ]
    return min([total, *later])


def _apply_due(
    store: Store, view: db.SessionView, attempt: int, timeline: Timeline, data: Any, epoch: int,
    state: Checkpoint | None,
) -> tuple[Timeline, int, Checkpoint | None, PandaAction | None]:
    """Apply the requests due after ``epoch`` epochs, in order. Returns the new (timeline, epoch, state)
    and the action that ends the run (pause or stop), if one came."""
    done: list[tuple[int, int]] = []
    refused: list[tuple[int, str]] = []
    rollback_to: int | None = None
    end: PandaAction | None = None
    for request in db.pending(store, view.id):
        if request.at_epoch is not None and request.at_epoch > epoch:
            continue
        if end is not None:
            break  # later requests wait for the next run
        try:
            if request.action == PandaAction.SET:
                timeline = timeline.changed(epoch, dict(request.values))
            elif request.action == PandaAction.ROLLBACK:
                target = int(request.to_epoch or 0)
                if target > epoch:
                    raise BadInput("--to-epoch", target, f"at most {epoch}, the epochs done")
                timeline = timeline.rolled_back(target, dict(request.values))
                left, epoch, rollback_to = epoch, target, target
            else:
                end = PandaAction(request.action)
        except BadInput as exc:
            refused.append((request.id, str(exc)))
            continue
        # a rollback is logged at the epoch it left; its values take effect at the one it went to
        done.append((request.id, left if request.action == PandaAction.ROLLBACK else epoch))
    if not done and not refused:
        return timeline, epoch, state, None
    if not db.apply(store, view.id, view.trial.id, attempt, done, refused, rollback_to):
        raise LeaseLost(view.trial.id)
    if rollback_to is not None:
        state = state_at(store, view.trial.id, timeline, data, rollback_to)
    return timeline, epoch, state, end


def _finish(
    store: Store, session_id: str, trial_id: str, attempt: int, status: TrialStatus,
    metrics: dict[str, Any] | None, *, error: str | None = None, last_epoch: dict[str, Any] | None = None,
) -> None:
    from service.store import studies
    from service.store.states import StudyState

    lease.finish_trial(store, trial_id, attempt, status, metrics, error=error, last_epoch=last_epoch)
    study_state = {
        TrialStatus.COMPLETE: StudyState.COMPLETE, TrialStatus.DIVERGED: StudyState.COMPLETE,
        TrialStatus.CANCELLED: StudyState.CANCELLED, TrialStatus.FAILED: StudyState.FAILED,
    }.get(status)
    if study_state is not None:
        studies.set_study_state(store, session_id, study_state)
